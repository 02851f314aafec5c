"""Run folders, manifests and atomic writes.

Layout: `<runs_dir>/<name>/config.yaml` (the resolved config, saved once per run) and one folder
per stage, `<runs_dir>/<name>/<stage>/`, each closed by a `manifest.json`. A stage folder without
a manifest is incomplete: the stage crashed or is still running.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tunewright.config import Config, config_hash, config_to_dict, config_to_yaml

MANIFEST = "manifest.json"
LIBRARIES = ("tunewright", "torch", "transformers", "peft", "trl", "datasets", "accelerate")


# ---------------------------------------------------------------------------------------------
# Atomic writes: write beside the target, fsync, then rename over it.


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` in one rename.

    On any exception the temporary folder is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Manifests


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_inputs(paths: list[Path]) -> dict[str, str]:
    """sha256 of each input file; a folder contributes every file under it."""
    hashes: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            hashes[str(file)] = sha256_file(file)
    return hashes


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    """The stage's manifest, or None when the stage never completed."""
    path = Path(stage_dir) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class StageRun:
    """One stage's run: its folder, the inputs it read and the outputs it wrote."""

    config: Config
    stage: str
    inputs: list[Path]
    dir: Path
    started: float = field(default_factory=time.time)
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def output(self, relative: str) -> Path:
        """Path for an output inside the stage folder; records it in the manifest."""
        if relative not in self.outputs:
            self.outputs.append(relative)
        return self.dir / relative

    def manifest(self) -> dict[str, Any]:
        now = time.time()
        return {
            "stage": self.stage,
            "run": self.config.name,
            "config_sha256": config_hash(self.config),
            "config": config_to_dict(self.config),
            "inputs": hash_inputs(self.inputs),
            "outputs": sorted(self.outputs),
            "seed": self.config.seed,
            "libraries": library_versions(),
            "git_commit": git_commit(self.config.base_dir),
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(),
            "wall_seconds": round(now - self.started, 3),
            **self.extra,
        }


@contextlib.contextmanager
def stage_run(config: Config, stage: str, inputs: list[Path] | None = None) -> Iterator[StageRun]:
    """Open `<run>/<stage>/` for writing; the manifest is written last, only on success.

    A stale manifest is removed first, so a crashed rerun never looks complete."""
    run_dir = config.run_dir
    save_resolved_config(config)
    stage_dir = run_dir / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (stage_dir / MANIFEST).unlink()
    run = StageRun(config=config, stage=stage, inputs=list(inputs or []), dir=stage_dir)
    yield run
    atomic_write_json(stage_dir / MANIFEST, run.manifest())


# The config sections each stage reads; a change elsewhere does not make its output stale.
DEPENDS = {
    "data": ("seed", "model", "data"),
    "train": ("seed", "model", "data", "train"),
    "eval": ("seed", "model", "data", "train", "eval"),
    "export": ("seed", "model", "train", "export"),
}


def is_up_to_date(config: Config, stage: str) -> bool:
    """True when `<run>/<stage>/` completed with the config sections it depends on unchanged and
    every input it read still has the same sha256."""
    manifest = read_manifest(config.run_dir / stage)
    if manifest is None:
        return False
    current, saved = config_to_dict(config), manifest.get("config", {})
    if any(saved.get(key) != current.get(key) for key in DEPENDS[stage]):
        return False
    return all(
        Path(path).is_file() and sha256_file(Path(path)) == digest
        for path, digest in manifest["inputs"].items()
    )


def save_resolved_config(config: Config) -> Path:
    """Write `<run>/config.yaml` (secrets redacted); rewritten only when the config changed."""
    path = config.run_dir / "config.yaml"
    text = config_to_yaml(config)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return path
