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
from tunewright.methods import MERGEABLE_METHODS
from tunewright.runs import (
    DATA,
    EVAL,
    TRAIN,
    eval_metrics,
    eval_report,
    is_up_to_date,
    merged_dir,
    read_manifest,
    stage_dir,
    trained_output,
)

STAGES = ("data", "train", "eval", "export")


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


def preflight_problems(config: Config) -> list[str]:
    """Every stage's own checks of a config, in workflow order, as one list (what `tunewright
    validate` reports after the schema's own checks; the web UI's form shows the same)."""
    from tunewright.data.preflight import preflight as data
    from tunewright.evaluation.preflight import preflight as evaluation
    from tunewright.exporting.preflight import preflight as exporting
    from tunewright.openai_ft.preflight import preflight as openai_ft
    from tunewright.serving.preflight import preflight as serving
    from tunewright.training.preflight import preflight as training

    stages = (data, training, openai_ft, evaluation, exporting, serving)
    return [problem for preflight in stages for problem in preflight(config)]


def not_applicable(config: Config, stage: str) -> str | None:
    """Why a stage does not apply to this config, or None when it does."""
    if stage in ("train", "eval", "export") and config.train.backend == "openai":
        return "train.backend is openai: use `tunewright openai submit`"
    if stage == "export" and not config.export.merge:
        return "export.merge is false"
    if stage == "export" and config.train.method == "full":
        return "full fine-tuning has nothing to merge (`tunewright export` exports the model)"
    if stage == "export" and config.train.method not in MERGEABLE_METHODS:
        return f"{config.train.method} adapters cannot be merged; they are served as adapters"
    if stage == "export" and (read_manifest(stage_dir(config, TRAIN)) or {}).get("labels"):
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
    from tunewright.training.stage import train_model

    train_model(config, console=console)


def _run_eval(config: Config, console: Console) -> None:
    from tunewright.evaluation.stage import evaluate_run

    evaluate_run(config, console=console)


def _run_export(config: Config, console: Console) -> None:
    from tunewright.exporting.stage import merge_adapter

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
    data = read_manifest(stage_dir(config, DATA)) or {}
    train = read_manifest(stage_dir(config, TRAIN)) or {}
    evals = read_manifest(stage_dir(config, EVAL)) or {}
    metrics = _eval_metrics(config)
    merged = merged_dir(config)
    serve_target = merged if merged.is_dir() else None
    return {
        "stages": [o.__dict__ for o in outcomes],
        "data": data.get("counts"),
        "train": train.get("metrics"),
        "eval": {
            "verdict": evals.get("verdict"),
            "primary_metric": evals.get("primary_metric"),
            "metrics": metrics,
            # each {kind, finding (with its evidence), suggestion (a config change)}
            "diagnosis": evals.get("diagnosis") or [],
        },
        "artifacts": {
            "data": str(stage_dir(config, DATA)),
            "model": str(trained_output(config) or stage_dir(config, TRAIN)),
            "report": str(eval_report(config)),
            "merged": str(serve_target) if serve_target else None,
        },
        "serve_command": f"tunewright serve {config_path}"
        if serve_target is None
        else f"tunewright serve --model {serve_target}",
    }


def _eval_metrics(config: Config) -> list[dict[str, Any]]:
    import json

    path = eval_metrics(config)
    if not path.is_file():
        return []
    results = json.loads(path.read_text(encoding="utf-8"))
    suites = [row for suite in results.get("suites") or [] for row in suite["metrics"]]
    return results["metrics"] + suites
