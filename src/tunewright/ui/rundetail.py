"""One run's page: its resolved config, each stage's manifest, checkpoints and artifacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tunewright.runs import (
    TRAIN,
    eval_report,
    read_manifest,
    resolved_config,
    stage_dir,
)
from tunewright.ui.catalog import STAGES, Run, read_run_config, stage_state

COMPLETE_MARK = "tunewright-complete.json"  # training/callbacks.py marks finished checkpoints


def run_detail(run: Run, live: bool = False) -> dict[str, Any]:
    config_file = resolved_config(run.path)
    now = time.time()
    manifests = {}
    for stage in STAGES:
        manifest = read_manifest(stage_dir(run.path, stage))
        if manifest is not None:
            # the config is on the page already and the input hashes are long: counted instead
            inputs = manifest.pop("inputs", {})
            manifest.pop("config", None)
            manifests[stage] = {**manifest, "inputs": len(inputs)}
    config = read_run_config(run.path)
    return {
        "id": run.id,
        "path": str(run.path),
        "config_text": config_file.read_text(encoding="utf-8") if config_file.is_file() else "",
        "stages": {s: stage_state(stage_dir(run.path, s), now, live) for s in STAGES},
        "manifests": manifests,
        "checkpoints": checkpoints(run.path),
        "artifacts": artifacts(run.path),
        "has_report": eval_report(run.path).is_file(),
        "log_content": bool((config.get("serve") or {}).get("log_content")),
    }


def checkpoints(run: Path) -> list[dict[str, Any]]:
    folder = stage_dir(run, TRAIN) / "checkpoints"
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return [
        {
            "name": p.name,
            "step": int(p.name.split("-")[-1]),
            "complete": (p / COMPLETE_MARK).is_file(),
        }
        for p in sorted(found, key=lambda p: int(p.name.split("-")[-1]))
    ]


def artifacts(run: Path) -> list[dict[str, Any]]:
    """Files and model folders each stage left, with their sizes in bytes."""
    rows = []
    for stage in STAGES:
        folder = stage_dir(run, stage)
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if child.name == "checkpoints":
                continue
            size = _size(child)
            kind = "folder" if child.is_dir() else "file"
            rows.append({"path": f"{stage}/{child.name}", "kind": kind, "bytes": size})
    return rows


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
