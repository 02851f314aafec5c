"""Command line: parse, load config, call one stage function, map user errors to exit 1.

Heavy libraries (torch, transformers) are imported inside commands, never at start-up, so
`tunewright validate` and `--help` answer instantly.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tunewright import __version__
from tunewright.console import ConfigArg, OverridesArg, err, out, state, yes
from tunewright.errors import TunewrightError
from tunewright.files import disk_full_error

if TYPE_CHECKING:
    from tunewright.config import Config

app = typer.Typer(
    name="tunewright",
    help="From raw examples to a fine-tuned, evaluated, served language model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Embedded and local models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        out.print(f"tunewright {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show full error detail.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    state["verbose"] = verbose


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("config.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config with every key at its default."""
    from tunewright.config.doc import starter_yaml
    from tunewright.files import atomic_write_text

    if path.exists() and not force:
        raise TunewrightError(f"{path} already exists", hint="Pass --force to overwrite it.")
    atomic_write_text(path, starter_yaml())
    out.print(f"wrote {path}: point data.train at your data, then run: tunewright validate {path}")


@app.command()
def validate(
    config: ConfigArg,
    overrides: OverridesArg = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc", help="Also check the layout of `train --nproc N`.", show_default=False
        ),
    ] = None,
    nnodes: Annotated[int, typer.Option("--nnodes", help="Machines, with --nproc.")] = 1,
) -> None:
    """Check a config: every problem at once, each named by its YAML key."""
    from tunewright.config import load_config
    from tunewright.config.load import secrets_in_file
    from tunewright.errors import ConfigError

    warn_secrets(config, secrets_in_file(config))
    cfg = load_config(config, overrides)
    problems = preflight_problems(cfg)
    if nproc is not None:
        from tunewright.training.preflight import layout_problems

        layout, notes = layout_problems(cfg, nproc, nnodes)
        problems += layout
        for note in notes:
            err.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    if problems:
        raise ConfigError(str(config), problems)
    out.print(
        f"[green]ok[/green] {config}: run '{cfg.name}', model {cfg.model.name}, "
        f"method {cfg.train.method}, outputs in {cfg.run_dir}"
    )


@app.command("import-config")
def import_config(
    source: Annotated[
        Path, typer.Argument(help="A LLaMA-Factory or Axolotl YAML.", show_default=False)
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write our config (default: <name>.tunewright.yaml beside the source).",
            show_default=False,
        ),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base",
            help="The folder the tool ran in: its relative paths "
            "(dataset_dir, data files, DeepSpeed JSON) are found there first, then "
            "beside the source (default: the current folder).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out.")] = False,
) -> None:
    """Translate a LLaMA-Factory or Axolotl config (and its dataset descriptions) into ours,
    printing what became of every key."""
    from tunewright.config.peers.detect import default_output
    from tunewright.config.peers.importer import translate_file, write_translation
    from tunewright.config.peers.translation import STATUS_TEXT

    target = out_path or default_output(source)
    if target.exists() and not force:
        raise TunewrightError(f"{target} already exists", hint="Pass --force to overwrite it.")
    translation = translate_file(source, target, base)
    table = Table(
        "source key",
        "result",
        "tunewright key",
        "how / what to do",
        title=(f"{source} ({translation.peer})"),
    )
    colours = {"translated": "green", "changed": "yellow", "unsupported": "red", "ignored": "dim"}
    for row in translation.rows:
        status = f"[{colours[row.status]}]{STATUS_TEXT[row.status]}[/]"
        table.add_row(escape(row.key), status, row.target, escape(row.note))
    out.print(table)
    written = write_translation(translation, target)
    out.print(
        f"wrote {', '.join(str(p) for p in written)}; check it with: tunewright validate {target}",
        soft_wrap=True,
    )


def warn_secrets(config: Path, paths: list[str]) -> None:
    """A warning (not an error) per key in the file that holds what looks like a secret; the
    value itself is never printed."""
    for path in paths:
        err.print(
            f"[yellow]warning:[/yellow] {escape(str(config))}: {escape(path)} looks like a secret "
            "(value not shown)",
            highlight=False,
        )
    if paths:
        err.print(
            "[bold]hint:[/bold] config files get copied and shared; keep secrets in environment "
            "variables: TUNEWRIGHT_API_KEYS for serve.api_keys, HF_TOKEN for the hub, "
            "OPENAI_API_KEY (or the variable openai.api_key_env names) for OpenAI.",
            highlight=False,
        )


def preflight_problems(config: Config) -> list[str]:
    """Every stage's own checks of a config, in workflow order, as one list."""
    from tunewright.pipeline import preflight_problems as every_stage

    return every_stage(config)


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Embedded models: name, parameters, source, and whether they are ready to load."""
    from tunewright.models import list_models

    rows = list_models()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("name", "kind", "parameters", "source", "installed", "cached", "description")
    for row in rows:
        params = f"{row['parameters']:,}" if row["parameters"] else f"~{row['nominal_parameters']}"
        table.add_row(
            row["name"],
            row["kind"],
            params,
            row["source"],
            yes(row["installed"]),
            yes(row["ready"]),
            row["description"],
        )
    out.print(table)
    out.print("Any local model folder or hub id works too, e.g. model.name: ./my-model")


@models_app.command("prepare")
def models_prepare(
    name: Annotated[str, typer.Argument(help="Embedded model name.")] = "smollm2-135m-instruct",
) -> None:
    """Convert an embedded model to a safetensors folder in the cache, ahead of first use."""
    from tunewright.models import EMBEDDED, is_ready, prepare_embedded

    if name not in EMBEDDED:
        raise TunewrightError(
            f"'{name}' is not an embedded model", hint=f"Embedded models: {', '.join(EMBEDDED)}."
        )
    if is_ready(EMBEDDED[name]):
        out.print(f"{name} is ready")
        return
    with out.status(f"converting {name} (about 20-40 s, once)"):
        path = prepare_embedded(name)
    out.print(f"{name} is ready at {path}")


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Library versions against the lock, torch build, device, memory, disk, models, extras."""
    from tunewright.doctor import collect_facts, lock_rows

    facts = collect_facts()
    if as_json:
        out.print_json(json.dumps(facts))
        return
    device = facts["device"]
    table = Table("check", "value", show_header=False)
    table.add_row("python", f"{facts['python']} ({facts['platform']})")
    for name, version in facts["versions"].items():
        table.add_row(name, version or "[red]missing[/red]")
    table.add_row("torch build", facts["torch_build"]["label"])
    for check, value, fine in lock_rows(facts["lock"]):
        table.add_row(escape(check), escape(value) if fine else f"[yellow]{escape(value)}[/yellow]")
    table.add_row("device", f"{device['type']}: {device['name']} x{device['count']}")
    table.add_row("CUDA", device.get("cuda") or "none")
    table.add_row("bf16 fast", yes(device["bf16"]))
    table.add_row("memory", f"{facts['memory_available_gib']} of {facts['memory_gib']} GiB free")
    table.add_row("free disk", f"{facts['free_disk_gib']} GiB at {facts['tunewright_home']}")
    for row in facts["models"]:
        state = "ready" if row["ready"] else "installed" if row["installed"] else "missing"
        table.add_row(f"model {row['name']}", state)
    for extra, present in facts["extras"].items():
        table.add_row(escape(f"extra [{extra}]"), yes(present))
    out.print(table)
    for warning in facts["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {escape(warning)}")


@app.command("run")
def run_all(
    config: ConfigArg,
    overrides: OverridesArg = None,
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force",
            help="Rerun this stage even if up to date (data, train, eval, export); repeatable.",
        ),
    ] = None,
) -> None:
    """The whole workflow: data -> train -> eval -> merge, skipping stages already up to date."""
    from tunewright.config import load_config
    from tunewright.pipeline import STAGES, run_pipeline, summary

    unknown = [s for s in force or [] if s not in STAGES]
    if unknown:
        raise TunewrightError(
            f"--force {unknown[0]}: unknown stage", hint=f"Stages: {', '.join(STAGES)}."
        )
    cfg = load_config(config, overrides)
    outcomes = run_pipeline(cfg, force=tuple(force or ()), console=err)
    print_run_summary(summary(cfg, config, outcomes))


def print_run_summary(result: dict) -> None:
    out.rule("[bold]summary")
    for stage in result["stages"]:
        took = f" in {stage['seconds']} s" if stage["status"] == "ran" else ""
        out.print(f"stage {stage['stage']}: {stage['status']}{took}")
    if result["data"]:
        d = result["data"]
        out.print(
            f"data: {d['total']} rows -> {d['train']} train, {d['eval']} eval, "
            f"{d['rejected']} rejected"
        )
    if result["train"]:
        t = result["train"]
        out.print(
            f"training: {t['steps']} steps in {t['train_seconds']} s "
            f"(training loop {t.get('train_loop_seconds', t['train_seconds'])} s at "
            f"{t['tokens_per_s']} tokens/s), loss {t['first_loss']:.4f} -> {t['final_loss']:.4f}"
        )
    for row in result["eval"]["metrics"]:
        out.print(
            f"{row['metric']}: {row['base']:.4g} -> {row['tuned']:.4g} "
            f"({row['diff']:+.4g}, 95% CI {row['ci_low']:+.4g} to {row['ci_high']:+.4g}): "
            f"{row['verdict']}"
        )
    if result["eval"]["verdict"]:
        out.print(
            f"[bold]verdict[/bold] ({result['eval']['primary_metric']}): "
            f"{result['eval']['verdict']}"
        )
    for finding in result["eval"].get("diagnosis") or []:
        line = escape(f"{finding['finding']} {finding['suggestion']}")
        out.print(f"[bold]diagnosis[/bold]: {line}", soft_wrap=True)
    for name, path in result["artifacts"].items():
        if path:
            out.print(f"{name} -> {path}", soft_wrap=True)
    out.print(f"serve it: {result['serve_command']}", soft_wrap=True)


def _register_command_groups() -> None:
    """Each stage package's commands, in workflow order."""
    from tunewright.data.cli import register as register_data
    from tunewright.evaluation.cli import register as register_eval
    from tunewright.exporting.cli import register as register_export
    from tunewright.openai_ft.cli import register as register_openai
    from tunewright.serving.cli import register as register_serve
    from tunewright.training.cli import register as register_training
    from tunewright.ui.cli import register as register_ui

    for register in (
        register_data,
        register_training,
        register_eval,
        register_export,
        register_serve,
        register_openai,
        register_ui,
    ):
        register(app)


_register_command_groups()


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    try:
        result = app(args=argv, prog_name="tunewright", standalone_mode=False)
    except TunewrightError as exc:
        return _user_error(exc)
    except typer.TyperException as exc:  # usage errors: unknown command, bad option
        exc.show()  # type: ignore[attr-defined]
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except Exception as exc:
        # Our own writers already say which path ran out of room; this catches the libraries'
        # writes (the Trainer's checkpoints): a full disk is the user's to fix, not a bug.
        full = disk_full_error(exc, getattr(exc, "filename", None))
        if full is None:
            raise
        return _user_error(full)
    return result if isinstance(result, int) else 0


def _user_error(exc: TunewrightError) -> int:
    """Print a user error and its hint (the traceback only with --verbose); exit status 1."""
    if state["verbose"]:
        err.print(traceback.format_exc(), markup=False, highlight=False)
    err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err.print(f"[bold]hint:[/bold] {escape(exc.hint)}", highlight=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())
