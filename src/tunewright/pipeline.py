"""`tunewright run`: every stage in order, skipping those already up to date.

A stage is up to date when its manifest exists, the config sections it depends on are unchanged,
and every input it read still has the same sha256. Upstream stages that rerun change their
outputs' hashes, so what depends on them reruns too; nothing else does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.runs import is_up_to_date, read_manifest

STAGES = ("data", "train", "eval", "export")
MERGEABLE = ("lora", "qlora", "dora", "ia3")


@dataclass
class StageOutcome:
    stage: str
    status: str  # "ran", "skipped (up to date)", "skipped (<reason>)"
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def run_pipeline(
    config: Config, *, force: tuple[str, ...] = (), console: Console | None = None
) -> list[StageOutcome]:
    """Run data -> train -> eval -> export (merge) for `config`; returns what each stage did."""
    console = console or Console(stderr=True)
    outcomes = []
    for stage in STAGES:
        reason = not_applicable(config, stage)
        if reason:
            outcomes.append(StageOutcome(stage, f"skipped ({reason})"))
            continue
        if stage not in force and is_up_to_date(config, stage):
            console.print(f"[dim]{stage}: up to date, skipped[/dim]")
            outcomes.append(StageOutcome(stage, "skipped (up to date)"))
            continue
        console.rule(f"[bold]{stage}")
        start = time.perf_counter()
        _RUNNERS[stage](config, console)
        outcomes.append(StageOutcome(stage, "ran", round(time.perf_counter() - start, 1)))
    return outcomes


def not_applicable(config: Config, stage: str) -> str | None:
    """Why a stage does not apply to this config, or None when it does."""
    if stage in ("train", "eval", "export") and config.train.backend == "openai":
        return "train.backend is openai: use `tunewright openai submit`"
    if stage == "export" and not config.export.merge:
        return "export.merge is false"
    if stage == "export" and config.train.method == "full":
        return "full fine-tuning has nothing to merge (`tunewright export` exports the model)"
    if stage == "export" and config.train.method not in MERGEABLE:
        return f"{config.train.method} adapters cannot be merged; they are served as adapters"
    if stage == "export" and (read_manifest(config.run_dir / "train") or {}).get("labels"):
        return "encoder classifiers are used as trained (adapter + head)"
    return None


# ---------------------------------------------------------------------------------------------
# Stage runners: each calls the stage's own entry function.


def _run_data(config: Config, console: Console) -> None:
    from tunewright.data.prepare import prepare_data

    analysis = prepare_data(config)
    rows = analysis.report["rows"]
    console.print(f"data: {rows['train']} train, {rows['eval']} eval, {rows['rejected']} rejected")


def _run_train(config: Config, console: Console) -> None:
    from tunewright.train import train_model

    train_model(config, console=console)


def _run_eval(config: Config, console: Console) -> None:
    from tunewright.evaluate import evaluate_run

    evaluate_run(config, console=console)


def _run_export(config: Config, console: Console) -> None:
    from tunewright.export import merge_adapter

    merge_adapter(config)


_RUNNERS: dict[str, Callable[[Config, Console], None]] = {
    "data": _run_data,
    "train": _run_train,
    "eval": _run_eval,
    "export": _run_export,
}


# ---------------------------------------------------------------------------------------------
# The closing summary


def summary(config: Config, config_path: Path, outcomes: list[StageOutcome]) -> dict[str, Any]:
    """What the run produced, read back from the stage manifests."""
    run_dir = config.run_dir
    data = read_manifest(run_dir / "data") or {}
    train = read_manifest(run_dir / "train") or {}
    evals = read_manifest(run_dir / "eval") or {}
    metrics = _eval_metrics(run_dir)
    merged = run_dir / "export" / "merged"
    serve_target = merged if merged.is_dir() else None
    return {
        "stages": [o.__dict__ for o in outcomes],
        "data": data.get("counts"),
        "train": train.get("metrics"),
        "eval": {
            "verdict": evals.get("verdict"),
            "primary_metric": evals.get("primary_metric"),
            "metrics": metrics,
        },
        "artifacts": {
            "data": str(run_dir / "data"),
            "model": str(
                next(
                    (
                        run_dir / "train" / n
                        for n in ("adapter", "model")
                        if (run_dir / "train" / n).is_dir()
                    ),
                    run_dir / "train",
                )
            ),
            "report": str(run_dir / "eval" / "report.html"),
            "merged": str(serve_target) if serve_target else None,
        },
        "serve_command": f"tunewright serve {config_path}"
        if serve_target is None
        else f"tunewright serve --model {serve_target}",
    }


def _eval_metrics(run_dir: Path) -> list[dict[str, Any]]:
    import json

    path = run_dir / "eval" / "metrics.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["metrics"]
