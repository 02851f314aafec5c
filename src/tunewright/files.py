"""Atomic writes, JSONL I/O and file hashes: how every stage writes and reads its files.

Imports nothing of ours but `errors.py`, so any module at any layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tunewright.errors import DiskFullError

# Writes that fail for want of room are the user's to fix (free space, raise the limit), so they
# become a `DiskFullError` naming the file or folder being written, shown without a traceback.
NO_ROOM = {
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file size limit reached",
}


def disk_full_error(exc: BaseException, path: Path | str | None) -> DiskFullError | None:
    """`exc` as a `DiskFullError` naming `path`, when it reports a full disk, a quota or the
    file-size limit; None for anything else."""
    code = _errno(exc)
    if code not in NO_ROOM:
        return None
    where = f" writing {path}" if path is not None else ""
    return DiskFullError(
        f"{NO_ROOM[code]}{where}",
        hint="Free space on that disk, or raise the quota or file-size limit (`ulimit -f`), "
        "then run the command again.",
    )


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, OSError):
        return exc.errno
    # Rust-backed writers (safetensors, tokenizers) raise their own types, with the I/O error
    # in the message: "Error while serializing: I/O error: File too large (os error 27)".
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


# ---------------------------------------------------------------------------------------------
# Atomic writes: write beside the target, fsync, then rename over it. A temporary is named
# `.NAME.PID.XXXX.tmp` (a folder being replaced: `.NAME.old-PID`), so the next writer of NAME can
# tell one left by a killed process from one still being written, and removes it: each may be
# as large as the artifact, and nothing else ever would.


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full := disk_full_error(exc, path):
            raise full from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` in one rename.

    On any exception the temporary folder is removed and `path` is left as it was; running out
    of room while filling it raises `DiskFullError` naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if full := disk_full_error(exc, path):
            raise full from exc
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of `path` whose writer no longer runs."""
    for entry in path.parent.glob(f".{glob.escape(path.name)}.*"):
        found = _TEMPORARY.fullmatch(entry.name[len(path.name) + 2 :])
        if found is None or _running(int(found.group(1) or found.group(2))):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


# After `.NAME.`: `PID.XXXX.tmp` (mkstemp/mkdtemp's random part has no dots) or `old-PID`.
_TEMPORARY = re.compile(r"(\d+)\.[A-Za-z0-9_]+\.tmp|old-(\d+)")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


# ---------------------------------------------------------------------------------------------
# JSONL: one compact JSON object per line, UTF-8, non-ASCII kept as is.


def _jsonl_line(row: Any, default: Callable[[Any], Any] | None = None) -> str:
    """`row` as one JSONL line, newline included; `default` converts what JSON cannot hold."""
    return json.dumps(row, ensure_ascii=False, default=default) + "\n"


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Replace `path` with `rows`, atomically."""
    atomic_write_text(path, "".join(_jsonl_line(row) for row in rows))


def append_jsonl(
    path: Path, rows: Iterable[Any], default: Callable[[Any], Any] | None = None
) -> None:
    """Add `rows` to the end of `path` (a log that grows while it is read; not atomic). A write
    that fails part-way is cut back off, so the log never ends in a torn line."""
    data = "".join(_jsonl_line(row, default) for row in rows).encode("utf-8")
    with open(path, "ab", buffering=0) as handle:
        start = handle.seek(0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:  # an unbuffered write may take only part of the bytes
                view = view[handle.write(view) :]
        except OSError as exc:
            handle.truncate(start)
            if full := disk_full_error(exc, path):
                raise full from exc
            raise


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every row of a JSONL file we wrote (blank lines skipped). A line that is not JSON raises
    `json.JSONDecodeError` naming `path:line`."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                where = f"{path}:{number}: {exc.msg}"
                raise json.JSONDecodeError(where, exc.doc, exc.pos) from None
    return rows


# ---------------------------------------------------------------------------------------------
# Hashes and headers


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safetensors_header(path: Path) -> bytes:
    """The JSON header of a safetensors file, as stored (no tensor bytes are read): the file
    opens with its length as a little-endian uint64, then the JSON (tensor name -> dtype, shape,
    offsets; plus an optional `__metadata__`)."""
    with open(path, "rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        return handle.read(size)
