"""`tunewright run CONFIG` started from the UI: a child process in a session of its own (so Cancel
ends it and everything it started), its output in a log file the page tails for progress."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_TAIL_BYTES = 16_384
GRACE_SECONDS = 5.0  # after SIGTERM, before SIGKILL
# rich's progress redraws end in a carriage return; the last redraw of each line is what counts.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Job:
    id: str
    config: Path
    run_dir: Path
    log: Path
    process: subprocess.Popen
    started: float = field(default_factory=time.time)
    cancelled: bool = False

    @property
    def state(self) -> str:
        code = self.process.poll()
        if code is None:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "done" if code == 0 else "failed"

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "config": str(self.config),
            "run_dir": str(self.run_dir),
            "state": self.state,
            "exit_code": self.process.poll(),
            "seconds": round(time.time() - self.started, 1),
            "log": log_tail(self.log),
        }


class JobBoard:
    """The jobs this UI started; they end with it."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._logs = Path(tempfile.mkdtemp(prefix="tunewright-ui-"))

    def start(self, config: Path, run_dir: Path) -> Job:
        with self._lock:
            job_id = str(next(self._ids))
            log = self._logs / f"job-{job_id}.log"
            command = [sys.executable, "-m", "tunewright", "run", str(config)]
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
            with log.open("wb") as handle:
                process = subprocess.Popen(
                    command,
                    cwd=config.parent,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            job = self.jobs[job_id] = Job(job_id, config, run_dir, log, process)
            return job

    def running_on(self, run_dir: Path) -> bool:
        return any(j.run_dir == run_dir and j.state == "running" for j in self.jobs.values())

    def cancel(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if job.process.poll() is None:
            job.cancelled = True
            # Not blocking the caller for the grace period: a thread finishes the kill.
            _signal(job.process, signal.SIGTERM)
            threading.Thread(target=_kill_later, args=(job.process,), daemon=True).start()
        return job

    def close(self) -> None:
        for job in self.jobs.values():
            if job.process.poll() is None:
                _signal(job.process, signal.SIGKILL)
                job.process.wait()


def log_tail(path: Path) -> str:
    """The end of a log as a terminal would show it (progress redraws collapsed)."""
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    lines = [_ANSI.sub("", line).split("\r")[-1] for line in text.split("\n")]
    return "\n".join(lines)


def _signal(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _kill_later(process: subprocess.Popen) -> None:
    try:
        process.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        process.wait()
