"""Command line: parse, load config, call one stage function, map user errors to exit 1.

Heavy libraries (torch, transformers) are imported inside commands, never at start-up, so
`tunewright validate` and `--help` answer instantly.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunewright import __version__
from tunewright.errors import TunewrightError

app = typer.Typer(
    name="tunewright",
    help="From raw examples to a fine-tuned, evaluated, served language model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Embedded and local models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

# Not a terminal (pipes, CI logs): print wide instead of wrapping tables at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)
_state = {"verbose": False}

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides such as train.lora.r=8 (value parsed as YAML).", show_default=False
    ),
]


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
    _state["verbose"] = verbose


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("config.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config with every key at its default."""
    from tunewright.configdoc import starter_yaml
    from tunewright.runs import atomic_write_text

    if path.exists() and not force:
        raise TunewrightError(f"{path} already exists", hint="Pass --force to overwrite it.")
    atomic_write_text(path, starter_yaml())
    out.print(f"wrote {path}: point data.train at your data, then run: tunewright validate {path}")


@app.command()
def validate(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Check a config: every problem at once, each named by its YAML key."""
    from tunewright.config import check_paths, load_config
    from tunewright.errors import ConfigError

    cfg = load_config(config, overrides)
    problems = check_paths(cfg)
    if problems:
        raise ConfigError(str(config), problems)
    out.print(
        f"[green]ok[/green] {config}: run '{cfg.name}', model {cfg.model.name}, "
        f"method {cfg.train.method}, outputs in {cfg.run_dir}"
    )


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
            _yes(row["installed"]),
            _yes(row["ready"]),
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
    """Library versions, device, memory, disk, embedded models and optional extras."""
    from tunewright.doctor import collect_facts

    facts = collect_facts()
    if as_json:
        out.print_json(json.dumps(facts))
        return
    device = facts["device"]
    table = Table("check", "value", show_header=False)
    table.add_row("python", f"{facts['python']} ({facts['platform']})")
    for name, version in facts["versions"].items():
        table.add_row(name, version or "[red]missing[/red]")
    table.add_row("device", f"{device['type']}: {device['name']} x{device['count']}")
    table.add_row("CUDA", device.get("cuda") or "none")
    table.add_row("bf16 fast", _yes(device["bf16"]))
    table.add_row("memory", f"{facts['memory_available_gib']} of {facts['memory_gib']} GiB free")
    table.add_row("free disk", f"{facts['free_disk_gib']} GiB at {facts['tunewright_home']}")
    for row in facts["models"]:
        state = "ready" if row["ready"] else "installed" if row["installed"] else "missing"
        table.add_row(f"model {row['name']}", state)
    for extra, present in facts["extras"].items():
        table.add_row(escape(f"extra [{extra}]"), _yes(present))
    out.print(table)


def _yes(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[yellow]no[/yellow]"


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    try:
        result = app(args=argv, prog_name="tunewright", standalone_mode=False)
    except TunewrightError as exc:
        if _state["verbose"]:
            err.print(traceback.format_exc(), markup=False, highlight=False)
        err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"[bold]hint:[/bold] {escape(exc.hint)}", highlight=False)
        return 1
    except typer.TyperException as exc:  # usage errors: unknown command, bad option
        exc.show()  # type: ignore[attr-defined]
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
