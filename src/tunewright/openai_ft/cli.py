"""`tunewright openai ...`: check files, submit and follow OpenAI fine-tuning jobs.

Registered on the main app by `register(app)`. Like cli.py: parse, load the config, call one
function of `tunewright.openai_ft`, print; user errors are TunewrightError (exit 1, no
traceback). Imports of the backend happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunewright.console import ConfigArg, err, out
from tunewright.errors import InputFileError, TunewrightError

openai_app = typer.Typer(
    help="OpenAI fine-tuning (train.backend: openai): check, submit, follow, cancel.",
    no_args_is_help=True,
)
JobArg = Annotated[
    str | None,
    typer.Argument(help="Job id (default: the run's last submitted job).", show_default=False),
]


def register(app: typer.Typer) -> None:
    """Add the `openai` command group to the main app."""
    app.add_typer(openai_app, name="openai")


# ---------------------------------------------------------------------------------------------
# check


@openai_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="OpenAI fine-tuning JSONL file.")],
    model: Annotated[str, typer.Option(help="Base model (sets token limit and encoding).")] = (
        "gpt-4o-mini-2024-07-18"
    ),
    epochs: Annotated[
        int | None, typer.Option(min=1, max=25, help="Epochs for billing (default: OpenAI's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a file as OpenAI's data-preparation guide does, plus the data stage's checks.

    Prints errors by class with their first lines, tokens per example, epochs and the billing
    estimate. Exit 1 when any error is found."""
    from tunewright.openai_ft.check import check_file

    if not file.is_file():
        raise InputFileError(f"file not found: {file}")
    report = check_file(file, model, epochs)
    if as_json:
        out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print_check_report(report)
    if not report.ok:
        raise typer.Exit(1)


def print_check_report(report: Any) -> None:
    out.print(
        f"[bold]{escape(report.path)}[/bold]: {report.examples} examples, {report.kind} format, "
        f"model {report.model}"
    )
    rows = report.by_check()
    if rows:
        table = Table("check", "severity", "count", "first lines", "example")
        for row in rows:
            colour = "red" if row["severity"] == "error" else "yellow"
            lines = ", ".join(map(str, row["lines"][:5])) or "(file)"
            table.add_row(
                row["check"],
                f"[{colour}]{row['severity']}[/{colour}]",
                str(row["count"]),
                lines,
                escape(row["detail"]),
            )
        out.print(table)
    stats = report.token_stats()
    exact = "" if report.exact_counts else ", estimate"
    limit = f"{report.limit:,}" if report.limit else "unknown"
    out.print(
        f"tokens per example ({report.encoding}{exact}): min {stats['min']}, mean "
        f"{stats['mean']}, max {stats['max']}; {stats['over_limit']} over the {limit}-token limit"
    )
    source = "OpenAI's default for this size" if report.epochs_source == "auto" else "as given"
    if report.kind != "rft":  # reinforcement is billed by time: its note says so
        out.print(
            f"epochs: {report.epochs} ({source}); billed tokens: ~{report.billed_tokens:,} "
            f"(each example up to the limit x {report.epochs} epochs)"
        )
    for note in report.notes:
        out.print(f"[yellow]note:[/yellow] {escape(note)}")
    errors, warnings = len(report.errors), len(report.warnings)
    counts = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    out.print(f"[bold red]{counts}[/bold red]" if errors else f"[green]ok[/green]: {counts}")


# ---------------------------------------------------------------------------------------------
# submit


@openai_app.command("submit")
def submit(
    config: ConfigArg,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Overrides such as openai.suffix=v2 (value parsed as YAML).", show_default=False
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job until it ends (openai.wait).")
    ] = False,
) -> None:
    """Convert the prepared data, check it, upload it and create the fine-tuning job."""
    from tunewright.config import load_config
    from tunewright.openai_ft.client import api_errors
    from tunewright.openai_ft.jobs import JobTracker, stage_dir
    from tunewright.openai_ft.submit import openai_method, openai_settings, submit_job

    cfg = load_config(config, overrides)
    settings = openai_settings(cfg)
    result = submit_job(cfg, console=err)
    report, method = result.reports["train"], openai_method(cfg)
    billing = (
        "billed by training time"
        if method == "reinforcement"
        else f"~{report.billed_tokens:,} billed tokens over {report.epochs} epochs"
    )
    out.print(
        f"[green]submitted[/green] job [bold]{result.job['id']}[/bold] ({settings.model}, "
        f"{method}, {billing})"
    )
    out.print(f"saved {stage_dir(cfg)}")
    if not (wait or settings.wait):
        out.print(f"follow it: tunewright openai status {config}")
        return
    tracker = JobTracker(result.client, result.job["id"], stage_dir(cfg))
    with api_errors(settings):
        _follow(tracker, settings.poll_seconds, config)


def _follow(tracker: Any, poll_seconds: float, config: Path) -> None:
    from tunewright.openai_ft.jobs import ensure_succeeded, follow_job

    with err.status(f"job {tracker.job_id}: starting") as spinner:

        def show(update: Any) -> None:
            print_update(update)
            spinner.update(f"job {tracker.job_id}: {update.job['status']}")

        def retry(message: str) -> None:
            err.print(f"[yellow]warning:[/yellow] {escape(message)}")

        try:
            job = follow_job(tracker, poll_seconds, show, retry)
        except KeyboardInterrupt:
            err.print(
                f"stopped following; job {tracker.job_id} goes on at OpenAI. "
                f"Check it with: tunewright openai status {config}"
            )
            raise typer.Exit(130) from None
    print_job(job)
    ensure_succeeded(job)


def print_update(update: Any) -> None:
    if update.status_changed:
        err.print(f"[bold]status[/bold]: {update.job['status']}")
    for event in update.events:
        print_event(event, err)
    for checkpoint in update.checkpoints:
        err.print(f"[bold]checkpoint[/bold] {_checkpoint_line(checkpoint)}")
    for path in update.results:
        err.print(f"saved result file {path}")


# ---------------------------------------------------------------------------------------------
# status, events, checkpoints, cancel, list


@openai_app.command("status")
def status(config: ConfigArg, job_id: JobArg = None) -> None:
    """The job's status, model, hyperparameters and error; saves it to the run folder."""
    from tunewright.openai_ft.client import api_errors

    cfg, settings, client, job_id = _job_context(config, job_id)
    with api_errors(settings):
        update = _tracker(cfg, client, job_id).poll()
    print_job(update.job)
    for path in update.results:
        out.print(f"saved result file {path}")


@openai_app.command("events")
def events(
    config: ConfigArg,
    job_id: JobArg = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show only the last N.")] = None,
) -> None:
    """The job's events, oldest first (new ones are added to events.jsonl)."""
    from tunewright.openai_ft.client import api_errors

    cfg, settings, client, job_id = _job_context(config, job_id)
    with api_errors(settings):
        tracker = _tracker(cfg, client, job_id)
        tracker.poll()
    shown = tracker.events[-limit:] if limit else tracker.events
    for event in shown:
        print_event(event, out)
    if not shown:
        out.print("no events yet")


@openai_app.command("checkpoints")
def checkpoints(config: ConfigArg, job_id: JobArg = None) -> None:
    """The job's checkpoints with their metrics (saved to checkpoints.json)."""
    from tunewright.openai_ft.client import api_errors

    cfg, settings, client, job_id = _job_context(config, job_id)
    with api_errors(settings):
        tracker = _tracker(cfg, client, job_id)
        tracker.poll()
    if not tracker.checkpoints:
        out.print("no checkpoints yet (OpenAI saves one at the end of each epoch, the last 3 kept)")
        return
    # OpenAI's metrics object lists every metric; show those this job reported.
    names = sorted(
        {k for c in tracker.checkpoints for k, v in c["metrics"].items() if v is not None}
        - {"step"}
    )
    table = Table("step", *names)
    table.add_column("checkpoint model", overflow="fold")
    for item in tracker.checkpoints:
        metrics = item["metrics"]
        values = [_number(metrics.get(name)) for name in names]
        table.add_row(str(item["step_number"]), *values, item["fine_tuned_model_checkpoint"])
    out.print(table)


@openai_app.command("cancel")
def cancel(config: ConfigArg, job_id: JobArg = None) -> None:
    """Cancel the job; its status is saved to the run folder."""
    from tunewright.openai_ft.client import api_errors
    from tunewright.openai_ft.jobs import run_folder_for, save_job

    cfg, settings, client, job_id = _job_context(config, job_id)
    with api_errors(settings):
        job = client.fine_tuning.jobs.cancel(job_id)
    folder = run_folder_for(cfg, job_id)
    if folder is not None:
        save_job(folder, job)
    out.print(f"job {job_id}: {job.status}")


@openai_app.command("list")
def list_jobs(
    config: ConfigArg,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many, newest first.")] = 20,
) -> None:
    """Recent fine-tuning jobs of the account; * marks this run's job."""
    from tunewright.config import load_config
    from tunewright.openai_ft.client import api_errors, make_client
    from tunewright.openai_ft.submit import openai_settings

    cfg = load_config(config)
    settings = openai_settings(cfg)
    client = make_client(settings)
    mine = _run_job_id(cfg)
    with api_errors(settings):
        page = client.fine_tuning.jobs.list(limit=limit)
    table = Table("", "id", "status", "model", "fine-tuned model", "created")
    for job in page.data:
        mark = "*" if job.id == mine else ""
        created = _time(job.created_at)
        table.add_row(mark, job.id, job.status, job.model, job.fine_tuned_model or "", created)
    out.print(table if page.data else "no fine-tuning jobs")


# ---------------------------------------------------------------------------------------------
# Helpers


def _job_context(config: Path, job_id: str | None) -> tuple[Any, Any, Any, str]:
    """Config, openai settings, client (the key is checked first) and the job id to use."""
    from tunewright.config import load_config
    from tunewright.openai_ft.client import make_client
    from tunewright.openai_ft.jobs import last_job_id
    from tunewright.openai_ft.submit import openai_settings

    cfg = load_config(config)
    settings = openai_settings(cfg)
    client = make_client(settings)
    return cfg, settings, client, job_id or last_job_id(cfg)


def _tracker(cfg: Any, client: Any, job_id: str) -> Any:
    from tunewright.openai_ft.jobs import JobTracker, run_folder_for

    return JobTracker(client, job_id, run_folder_for(cfg, job_id))


def _run_job_id(cfg: Any) -> str | None:
    from tunewright.openai_ft.jobs import last_job_id

    try:
        return last_job_id(cfg)
    except TunewrightError:
        return None


def print_job(job: dict[str, Any]) -> None:
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(job["status"])
    state = f"[{colour}]{job['status']}[/{colour}]" if colour else job["status"]
    out.print(f"job [bold]{job['id']}[/bold]: {state}")
    out.print(f"base model: {job['model']}")
    if job.get("fine_tuned_model"):
        out.print(f"fine-tuned model: [bold]{job['fine_tuned_model']}[/bold]")
    method = job.get("method") or {}
    hyper = (method.get(method.get("type") or "") or {}).get("hyperparameters") or {}
    if hyper:
        shown = ", ".join(f"{k} {v}" for k, v in hyper.items() if v is not None)
        out.print(f"method: {method.get('type')} ({shown})")
    if job.get("trained_tokens"):
        out.print(f"trained tokens: {job['trained_tokens']:,}")
    times = [f"created {_time(job['created_at'])}"]
    if job.get("finished_at"):
        times.append(f"finished {_time(job['finished_at'])}")
    out.print(", ".join(times))
    error = job.get("error") or {}
    if error.get("message"):
        out.print(
            f"[red]error[/red] {escape(str(error.get('code')))}: {escape(error['message'])}"
            + (f" (param {escape(str(error['param']))})" if error.get("param") else "")
        )


def print_event(event: dict[str, Any], console: Console) -> None:
    colour = {"warn": "yellow", "error": "red"}.get(event.get("level", ""), "dim")
    console.print(
        f"[{colour}]{_time(event['created_at'])} {event.get('level', 'info')}[/{colour}] "
        f"{escape(event['message'])}",
        highlight=False,
    )


def _checkpoint_line(checkpoint: dict[str, Any]) -> str:
    metrics = {k: v for k, v in checkpoint["metrics"].items() if k != "step" and v is not None}
    shown = ", ".join(f"{k} {_number(v)}" for k, v in metrics.items())
    return (
        f"step {checkpoint['step_number']}: {shown} -> {checkpoint['fine_tuned_model_checkpoint']}"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def _time(seconds: int | None) -> str:
    if not seconds:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
