import errno
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tunewright.errors import DiskFullError
from tunewright.files import (
    append_jsonl,
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    disk_full_error,
    read_jsonl,
    safetensors_header,
    sha256_file,
    write_jsonl,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["out.txt"]


def test_failed_atomic_write_keeps_old_content(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {1j: "complex keys cannot be JSON"})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_dir_commits_only_on_success(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("v1")
    assert (target / "weights.bin").read_text() == "v1"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (target / "weights.bin").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["model"]
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("v2")
    assert (target / "weights.bin").read_text() == "v2"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_jsonl_round_trip_keeps_rows_and_non_ascii(tmp_path):
    rows = [{"text": "naïve café ☕", "n": 1}, {"nested": {"list": [1.5, None, True]}}]
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, rows)
    assert read_jsonl(path) == rows
    assert path.read_text(encoding="utf-8").splitlines()[0] == '{"text": "naïve café ☕", "n": 1}'
    assert os.listdir(tmp_path) == ["rows.jsonl"]


def test_append_jsonl_adds_lines_and_converts_with_default(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, [{"step": 1}])
    append_jsonl(path, [{"step": 2, "value": 0.5j}], default=str)
    assert read_jsonl(path) == [{"step": 1}, {"step": 2, "value": "0.5j"}]


def test_read_jsonl_skips_blank_lines_and_names_the_bad_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": \n', encoding="utf-8")
    with pytest.raises(json.JSONDecodeError, match=f"{path}:4: "):
        read_jsonl(path)
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(3000))
    assert sha256_file(path, chunk=1024) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_safetensors_header_reads_only_the_header(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    encoded = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"\x00" * 8)
    assert json.loads(safetensors_header(path)) == header


# Out of room: a child process under a small file-size limit (RLIMIT_FSIZE), where a write past
# the limit fails with EFBIG, as on a full disk (ENOSPC).
FILE_LIMIT = 4096  # bytes
QUIET = {"capture_output": True, "text": True, "timeout": 120}


def _write_under_file_limit(code: str, target: Path) -> dict:
    """Run `code` (with `target` as a Path) in a child limited to FILE_LIMIT bytes per file;
    returns the message and hint of the DiskFullError it raised."""
    child = f"""
import json
from pathlib import Path
from tunewright.errors import DiskFullError
from tunewright.files import append_jsonl, atomic_dir, atomic_write_bytes
target = Path({str(target)!r})
try:
{textwrap.indent(textwrap.dedent(code), "    ")}
except DiskFullError as exc:
    print(json.dumps({{"message": exc.message, "hint": exc.hint}}))
"""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))

    done = subprocess.run([sys.executable, "-c", child], preexec_fn=limit_file_size, **QUIET)
    assert done.returncode == 0 and done.stdout, done.stderr
    return json.loads(done.stdout)


def test_atomic_write_out_of_room_names_the_target_and_keeps_it(tmp_path):
    target = tmp_path / "report.json"
    target.write_text('{"old": true}')
    raised = _write_under_file_limit('atomic_write_bytes(target, b"x" * 10_000)', target)
    assert raised["message"] == f"file size limit reached writing {target}"
    assert "ulimit" in raised["hint"]
    assert target.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["report.json"]  # the temporary file is gone


def test_atomic_dir_out_of_room_names_the_folder_and_keeps_it(tmp_path):
    target = tmp_path / "merged"
    target.mkdir()
    (target / "model.safetensors").write_text("old")
    code = """
    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"x" * 10_000)
    """
    raised = _write_under_file_limit(code, target)
    assert raised["message"] == f"file size limit reached writing {target}"
    assert os.listdir(tmp_path) == ["merged"]
    assert os.listdir(target) == ["model.safetensors"]
    assert (target / "model.safetensors").read_text() == "old"


def test_append_jsonl_out_of_room_leaves_no_torn_line(tmp_path):
    target = tmp_path / "metrics.jsonl"
    append_jsonl(target, [{"step": 1}])
    raised = _write_under_file_limit('append_jsonl(target, [{"text": "x" * 10_000}])', target)
    assert raised["message"] == f"file size limit reached writing {target}"
    assert target.read_text() == '{"step": 1}\n'


def test_disk_full_error_reads_the_errno_of_oserrors_and_rust_writers():
    full = disk_full_error(OSError(errno.ENOSPC, "No space left on device"), "/runs/a.json")
    assert isinstance(full, DiskFullError)
    assert full.message == "no space left writing /runs/a.json"
    # safetensors reports I/O errors as its own type, the errno in the message
    rust = RuntimeError("Error while serializing: I/O error: Disk quota exceeded (os error 122)")
    assert disk_full_error(rust, "/runs/m").message == "disk quota exceeded writing /runs/m"
    assert disk_full_error(OSError(errno.EACCES, "Permission denied"), "/x") is None
    assert disk_full_error(ValueError("bad value"), "/x") is None


def test_writes_remove_temporaries_that_killed_writers_left_and_only_those(tmp_path):
    """A SIGKILL mid-write leaves `.NAME.PID.XXXX.tmp` (or `.NAME.old-PID` between the two
    renames of atomic_dir); the next write of NAME removes those of dead processes."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **QUIET)
    dead = int(child.stdout)  # exited: no process has this pid now
    left = [f".merged.{dead}.k3_x9a.tmp", f".merged.old-{dead}", f".report.json.{dead}.q1w2.tmp"]
    for name in left[:2]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"half")
    (tmp_path / left[2]).write_text('{"half')
    kept = [
        f".merged.{os.getpid()}.abc.tmp",  # a writer still running (this one)
        f".report.json.extra.{dead}.q1w2.tmp",  # another file's (report.json.extra)
    ]
    for name in kept:
        (tmp_path / name).write_text("")
    with atomic_dir(tmp_path / "merged") as tmp:
        (tmp / "model.safetensors").write_bytes(b"whole")
    atomic_write_text(tmp_path / "report.json", "{}")
    assert sorted(os.listdir(tmp_path)) == sorted(["merged", "report.json", *kept])
