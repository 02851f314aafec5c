"""Child processes for tests: their output always goes somewhere that is read or stored, and
whatever a test leaves running (a torchrun's ranks included) is killed when the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path


def run_captured(command: list[str], timeout: float | None, env: dict[str, str]) -> tuple[int, str]:
    """Run `command` to the end; (exit code, stdout + stderr). communicate() reads both pipes
    as the child writes, so a chatty child never blocks on a full pipe. timeout None: the
    test's own limit (pytest-timeout) bounds it."""
    with started(command, env) as child:
        out, err = child.communicate(timeout=timeout)
    return child.returncode, out.decode(errors="replace") + err.decode(errors="replace")


@contextlib.contextmanager
def started(
    command: list[str], env: dict[str, str], log: Path | None = None
) -> Iterator[subprocess.Popen]:
    """Popen in a session of its own, stdout and stderr to the file `log` (a pipe nobody reads
    blocks its writer at 64 KiB) or, without one, to pipes for communicate(). On leaving,
    the session is killed if the child still runs."""
    with contextlib.ExitStack() as files:
        if log is None:
            out = err = subprocess.PIPE
        else:
            out, err = files.enter_context(log.open("wb")), subprocess.STDOUT
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            yield child
        finally:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
