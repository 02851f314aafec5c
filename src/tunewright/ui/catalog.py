"""The runs the UI shows: where they are, what state each stage is in, and what they measured.

A run folder is any folder under a runs folder holding a `config.yaml` or a stage folder (the
layout is `runs.py`'s). A stage is *done* when its manifest exists; without one it is *running*
while something wrote into it within `ACTIVE_SECONDS` (or the UI itself started the job), and
*failed* otherwise (it crashed or was stopped: `stage_run` removes the manifest on start).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tunewright.files import read_jsonl
from tunewright.runs import (
    DATA,
    EVAL,
    EXPORT,
    MANIFEST,
    TRAIN,
    eval_metrics,
    read_manifest,
    resolved_config,
    stage_dir,
    train_history,
)

if TYPE_CHECKING:
    from tunewright.config import Config

STAGES = (DATA, TRAIN, EVAL, EXPORT)
# A stage folder without a manifest that nothing wrote into for this long has stopped. Model
# loading writes nothing for a while, so this is minutes, not seconds.
ACTIVE_SECONDS = 120.0
# Folders never searched for configs: environments, caches and the runs themselves.
SKIPPED = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    "runs",
    ".cache",
    "site-packages",
}
SEARCH_DEPTH = 4


@dataclass(frozen=True)
class Run:
    id: str  # the folder name, made unique with ~2, ~3 ... across runs folders
    path: Path


def default_runs_dirs(cwd: Path) -> list[Path]:
    """`./runs`, and the runs folder of every tunewright config found below `cwd`."""
    found = [cwd / "runs"]
    for config in _yaml_files(cwd, SEARCH_DEPTH):
        raw = _read_yaml(config)
        if isinstance(raw, dict) and _looks_like_config(raw):
            runs_dir = raw.get("runs_dir", "runs")
            if isinstance(runs_dir, str):
                found.append((config.parent / runs_dir).resolve())
    unique: list[Path] = []
    for folder in found:
        if folder.resolve() not in unique:
            unique.append(folder.resolve())
    return unique


def find_runs(runs_dirs: Iterable[Path]) -> list[Run]:
    """Every run folder under the runs folders (or a runs folder that is itself a run)."""
    paths: list[Path] = []
    for folder in runs_dirs:
        if not folder.is_dir():
            continue
        if _is_run(folder):
            paths.append(folder.resolve())
            continue
        paths += sorted(p.resolve() for p in folder.iterdir() if p.is_dir() and _is_run(p))
    runs: list[Run] = []
    taken: dict[str, int] = {}
    for path in dict.fromkeys(paths):  # keeps order, drops a folder reached twice
        count = taken[path.name] = taken.get(path.name, 0) + 1
        runs.append(Run(path.name if count == 1 else f"{path.name}~{count}", path))
    return runs


def stage_state(folder: Path, now: float, running_jobs: bool = False) -> str:
    """done, running, failed, or '' when the stage never started."""
    if not folder.is_dir():
        return ""
    if (folder / MANIFEST).is_file():
        return "done"
    if running_jobs or now - _newest_write(folder) < ACTIVE_SECONDS:
        return "running"
    return "failed"


def summary(run: Run, live: bool = False) -> dict[str, Any]:
    """One row of the runs table. `live`: the UI is running a job on this run right now."""
    now = time.time()
    config = read_run_config(run.path)
    states = {s: stage_state(stage_dir(run.path, s), now, live) for s in STAGES}
    if live:  # only the first unfinished stage is the one running
        pending = [s for s in STAGES if states[s] != "done"]
        states = {
            s: ("running" if s == pending[0] else "") if s in pending else "done" for s in STAGES
        }
    metrics = read_json(eval_metrics(run.path)) or {}
    train = (read_manifest(stage_dir(run.path, TRAIN)) or {}).get("metrics") or {}
    return {
        "id": run.id,
        "path": str(run.path),
        "name": config.get("name", run.path.name),
        "model": (config.get("model") or {}).get("name"),
        "method": (config.get("train") or {}).get("method"),
        "stages": states,
        "metrics": key_metrics(metrics),
        "verdict": metrics.get("verdict"),
        "primary_metric": metrics.get("primary_metric"),
        "final_loss": train.get("final_loss"),
        "steps": train.get("steps"),
        "modified": _newest_write(run.path),
    }


def key_metrics(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The eval's metric rows (base, tuned, difference, its 95% interval, verdict)."""
    keep = ("metric", "base", "tuned", "diff", "ci_low", "ci_high", "verdict", "higher_is_better")
    return [{k: row.get(k) for k in keep} for row in metrics.get("metrics") or []]


def compare(runs: list[Run]) -> dict[str, Any]:
    """Config keys whose values differ between the runs, and every run's metrics."""
    flat = [_flatten(read_run_config(run.path)) for run in runs]
    keys = sorted({key for config in flat for key in config})
    differences = [
        {"key": key, "values": [config.get(key) for config in flat]}
        for key in keys
        if len({json.dumps(config.get(key), sort_keys=True) for config in flat}) > 1
    ]
    return {
        "runs": [run.id for run in runs],
        "config_differences": differences,
        "metrics": [key_metrics(read_json(eval_metrics(run.path)) or {}) for run in runs],
        "verdicts": [(read_json(eval_metrics(run.path)) or {}).get("verdict") for run in runs],
    }


def read_run_config(run: Path) -> dict[str, Any]:
    """The resolved config.yaml of a run as plain data ({} when missing or unreadable)."""
    raw = _read_yaml(resolved_config(run))
    return raw if isinstance(raw, dict) else {}


def read_history(run: Path, after: int = 0) -> tuple[list[dict[str, Any]], int]:
    """metrics.jsonl entries from line `after` on, and the count of complete lines read. A last
    line still being written (no newline yet) is left for the next call."""
    path = train_history(run)
    if not path.is_file():
        return [], after
    lines = path.read_bytes().split(b"\n")[:-1]  # the part after the last newline is partial
    entries = []
    for line in lines[after:]:
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append({})  # keeps line numbers; a torn line is not a point
    return entries, len(lines)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_rows(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path) if path.is_file() else []


# ---------------------------------------------------------------------------------------------


def _is_run(folder: Path) -> bool:
    return resolved_config(folder).is_file() or any(
        stage_dir(folder, s).is_dir() for s in (DATA, TRAIN)
    )


def _newest_write(folder: Path) -> float:
    """The latest modification time of the folder or anything in it, two levels deep (a stage
    writes its logs and checkpoints there; deeper walks cost too much on big checkpoints)."""
    newest = folder.stat().st_mtime
    for child in folder.iterdir():
        newest = max(newest, child.stat().st_mtime)
        if child.is_dir():
            for grandchild in child.iterdir():
                newest = max(newest, grandchild.stat().st_mtime)
    return newest


def _yaml_files(root: Path, depth: int) -> Iterable[Path]:
    try:
        children = sorted(root.iterdir())
    except OSError:
        return
    for child in children:
        if child.is_dir() and depth > 0 and child.name not in SKIPPED:
            yield from _yaml_files(child, depth - 1)
        elif child.suffix in (".yaml", ".yml") and child.is_file():
            yield child


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None


def _looks_like_config(raw: dict[str, Any]) -> bool:
    from tunewright.config import Config

    return bool(raw) and set(raw) <= set(Config.model_fields) and ("data" in raw or "name" in raw)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def load_run_config(run: Path) -> Config:
    """The run's resolved config as a Config, its relative paths resolving where the original
    config file was: `<base>/<runs_dir>/<name>` is the run folder, so `base` is found by
    climbing one folder per part of runs_dir (an absolute runs_dir leaves the run's folder)."""
    from tunewright.config import load_config

    config = load_config(resolved_config(run))
    runs_dir = Path(config.runs_dir)
    base = run.parent
    if not runs_dir.is_absolute():
        for _ in runs_dir.parts:
            base = base.parent
    config.base_dir = base
    return config
