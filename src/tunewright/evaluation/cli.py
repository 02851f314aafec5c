"""`tunewright eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tunewright.console import ConfigArg, OverridesArg, err, out


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)


def evaluate(
    config: ConfigArg,
    overrides: OverridesArg = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Evaluate on this file instead of the split.")
    ] = None,
    require_improvement: Annotated[
        bool,
        typer.Option("--require-improvement", help="Exit 1 unless significantly better."),
    ] = False,
    checkpoints: Annotated[
        bool,
        typer.Option("--checkpoints", help="Also evaluate every kept checkpoint (a curve)."),
    ] = False,
) -> None:
    """Compare the tuned model with its base on held-out data; writes report.html."""
    from tunewright.config import load_config
    from tunewright.evaluation.stage import evaluate_run
    from tunewright.runs import eval_report

    cfg = load_config(config, overrides)
    if require_improvement:
        cfg.eval.require_improvement = True
    try:
        results = evaluate_run(cfg, data_file=data, console=err, checkpoints=checkpoints)
    finally:
        report = eval_report(cfg)
        if report.is_file():
            out.print(f"report: {report}")
    print_eval_summary(results)


def print_eval_summary(results: dict) -> None:
    table = Table("metric", "base", "tuned", "difference (95% CI)", "p", "verdict")
    suite_rows = [row for suite in results.get("suites") or [] for row in suite["metrics"]]
    for row in results["metrics"] + suite_rows:
        table.add_row(
            row["metric"],
            f"{row['base']:.4g}",
            f"{row['tuned']:.4g}",
            f"{row['diff']:+.4g} ({row['ci_low']:+.4g} to {row['ci_high']:+.4g})",
            f"{row['p_value']:.3g}",
            row["verdict"],
        )
    out.print(table)
    out.print(
        f"[bold]verdict[/bold] on {results['primary_metric']}: {results['verdict']} "
        f"({results['n_examples']} examples)"
    )
    if results.get("primary_reason"):
        reason = escape(f"{results['primary_metric']}: {results['primary_reason']}")
        out.print(f"  {reason}", soft_wrap=True)
    for finding in results.get("diagnosis") or []:
        line = escape(f"{finding['finding']} {finding['suggestion']}")
        out.print(f"[bold]diagnosis[/bold]: {line}", soft_wrap=True)
    if "checkpoints" in results:
        out.print(f"[bold]checkpoints[/bold]: {results['checkpoints']['summary']}")
    worse = results.get("slices", {}).get("worse")
    if worse:
        out.print(f"[bold]significantly worse slices[/bold] (Holm-corrected): {', '.join(worse)}")
