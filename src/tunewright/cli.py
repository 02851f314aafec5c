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
data_app = typer.Typer(
    help="Load, check, split, export and render training data.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

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


SourceArg = Annotated[
    Path, typer.Argument(help="A YAML config, or a data file to check with default settings.")
]


def _config_or_file(source: Path, overrides: list[str] | None):
    """A config file as it is, or a data file wrapped in the default config."""
    from tunewright.config import load_config

    if source.suffix.lower() in (".yaml", ".yml"):
        return load_config(source, overrides)
    config = load_config(None, overrides)
    config.data.train = [str(source.resolve())]
    return config


@data_app.command("inspect")
def data_inspect(
    source: SourceArg,
    overrides: OverridesArg = None,
    rows: Annotated[int, typer.Option(help="Examples to show per file.")] = 2,
) -> None:
    """Detected format, row counts and the first examples in canonical form."""
    from tunewright.data.prepare import load_side

    config = _config_or_file(source, overrides)
    for side, items in (("train", config.data.train), ("eval", config.data.eval)):
        if not items:
            continue
        loaded = load_side(config, items, side)
        for info in loaded.files:
            out.print(
                f"[bold]{escape(info['file'])}[/bold] ({side}): {info['rows']} rows, "
                f"format {info['format'] or 'unknown'}"
            )
        for record in loaded.records[:rows]:
            out.print_json(json.dumps(record, ensure_ascii=False))
        if loaded.rejected:
            out.print(
                f"[yellow]{len(loaded.rejected)} rows could not be read[/yellow], first: "
                f"{escape(loaded.rejected[0]['source'])}: {escape(loaded.rejected[0]['reason'])}"
            )


@data_app.command("validate")
def data_validate(
    source: SourceArg,
    overrides: OverridesArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the data and print the report; writes nothing. Exit 1 when a gate would fail."""
    from tunewright.data.prepare import analyze, gate_message

    analysis = analyze(_config_or_file(source, overrides))
    if as_json:
        out.print_json(json.dumps(analysis.report, ensure_ascii=False))
    else:
        print_data_report(analysis.report)
    if analysis.failed_gates:
        err.print(f"[bold red]error:[/bold red] {escape(gate_message(analysis))}")
        raise typer.Exit(1)


@data_app.command("prepare")
def data_prepare(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Check, split and write train/eval/rejected files and validation.json to the run folder."""
    from tunewright.config import load_config
    from tunewright.data.prepare import STAGE, DataGateError, prepare_data

    cfg = load_config(config, overrides)
    try:
        analysis = prepare_data(cfg)
    except DataGateError:
        report_path = cfg.run_dir / STAGE / "validation.json"
        if report_path.is_file():
            print_data_report(json.loads(report_path.read_text(encoding="utf-8")))
        raise
    print_data_report(analysis.report)
    out.print(f"[green]wrote[/green] {cfg.run_dir / STAGE}")


@data_app.command("export")
def data_export(
    config: ConfigArg,
    overrides: OverridesArg = None,
    to: Annotated[str, typer.Option("--to", help="openai, alpaca or sharegpt.")] = "openai",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
) -> None:
    """Export the prepared train/eval data to OpenAI JSONL, alpaca JSON or sharegpt JSON."""
    from tunewright.config import load_config
    from tunewright.data.export import CONVERTERS, SUFFIX, export_records
    from tunewright.data.prepare import STAGE, write_jsonl
    from tunewright.data.records import read_jsonl

    if to not in CONVERTERS:
        raise TunewrightError(f"--to {to}: unknown format", hint="Use openai, alpaca or sharegpt.")
    cfg = load_config(config, overrides)
    data_dir = cfg.run_dir / STAGE
    target = out_dir or data_dir / "export"
    for split in ("train", "eval"):
        source = data_dir / f"{split}.jsonl"
        if not (data_dir / "manifest.json").is_file() or not source.is_file():
            raise TunewrightError(
                f"no prepared data in {data_dir}",
                hint=f"Run `tunewright data prepare {config}` first.",
            )
        records = read_jsonl(source)
        path = target / f"{split}{SUFFIX[to]}"
        skipped = export_records(records, to, path)  # type: ignore[arg-type]
        out.print(f"{split}: {len(records) - len(skipped)} rows -> {path}")
        if skipped:
            write_jsonl(target / f"{split}.skipped.jsonl", skipped)
            out.print(
                f"[yellow]{len(skipped)} rows cannot be held by {to}[/yellow]: "
                f"{target / f'{split}.skipped.jsonl'}"
            )


@data_app.command("render")
def data_render(
    config: ConfigArg,
    overrides: OverridesArg = None,
    index: Annotated[list[int] | None, typer.Option("--index", "-i", help="Example index.")] = None,
    split: Annotated[str, typer.Option(help="train or eval.")] = "train",
) -> None:
    """Show the exact tokens an example trains on, marking those that carry loss."""
    from tunewright.chat import render_example, render_markup
    from tunewright.config import load_config
    from tunewright.data.prepare import STAGE, load_side
    from tunewright.data.records import read_jsonl
    from tunewright.models import load_tokenizer, resolve_model

    cfg = load_config(config, overrides)
    prepared = cfg.run_dir / STAGE / f"{split}.jsonl"
    if prepared.is_file():
        records = read_jsonl(prepared)
    else:
        records = load_side(
            cfg, cfg.data.train if split == "train" else cfg.data.eval, split
        ).records
    tokenizer = load_tokenizer(resolve_model(cfg.model.name))
    for i in index or [0]:
        if not 0 <= i < len(records):
            raise TunewrightError(f"--index {i}: {split} has {len(records)} examples")
        rendered = render_example(
            tokenizer,
            records[i]["messages"],
            tools=records[i].get("tools"),
            train_on_prompt=cfg.train.train_on_prompt,
            max_seq_len=cfg.data.max_seq_len,
        )
        loss = sum(1 for label in rendered.labels if label != -100)
        out.rule(f"{split}[{i}] {records[i]['source']['file']}:{records[i]['source']['line']}")
        out.print(render_markup(tokenizer, rendered), highlight=False)
        out.print(
            f"{len(rendered.input_ids)} tokens, {loss} with loss"
            + (
                f", truncated from {rendered.full_length}"
                if rendered.full_length > len(rendered.input_ids)
                else ""
            )
        )


@app.command()
def train(
    config: ConfigArg,
    overrides: OverridesArg = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last complete checkpoint.")
    ] = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            help="Processes on this machine (one per GPU; on CPU, gloo); starts them with "
            "torchrun. Engine: train.distributed.",
            show_default=False,
        ),
    ] = None,
    nnodes: Annotated[int, typer.Option("--nnodes", help="Machines taking part.")] = 1,
    node_rank: Annotated[
        int, typer.Option("--node-rank", help="This machine's index, 0..nnodes-1.")
    ] = 0,
    master_addr: Annotated[
        str | None,
        typer.Option("--master-addr", help="Host name or IP of machine 0.", show_default=False),
    ] = None,
    master_port: Annotated[
        int | None,
        typer.Option(
            "--master-port", help="Free TCP port on machine 0 [29500].", show_default=False
        ),
    ] = None,
) -> None:
    """Fine-tune the model on the prepared data (runs the data stage first when needed)."""
    from os import environ as os_environ

    from tunewright.config import load_config

    cfg = load_config(config, overrides)
    if nproc is not None or nnodes > 1:
        from tunewright.distributed import Topology, launch_training, train_arguments

        topology = Topology(nproc or 1, nnodes, node_rank, master_addr, master_port)
        args = train_arguments(config, overrides or [], resume, verbose=_state["verbose"])
        raise typer.Exit(launch_training(cfg, topology, args, err))
    from tunewright.train import train_model

    try:
        result = train_model(cfg, resume=resume, console=err)
    except TunewrightError:
        if os_environ.get("RANK", "0") != "0":
            raise typer.Exit(1) from None  # rank 0 reports the problem once
        raise
    if not result.is_main:
        return
    metrics = result.metrics
    out.print(
        f"[green]trained[/green] {metrics['steps']} steps: loss {metrics['first_loss']:.4f}"
        f" -> {metrics['final_loss']:.4f}, eval loss {metrics['eval_loss']}, "
        f"{metrics['tokens_per_s']} tokens/s"
    )
    out.print(f"saved {result.output_dir}")


@app.command()
def plan(
    config: ConfigArg,
    overrides: OverridesArg = None,
    nproc: Annotated[
        int, typer.Option("--nproc", help="Processes to plan for (train --nproc).")
    ] = 1,
    warmup: Annotated[
        bool,
        typer.Option("--warmup/--no-warmup", help="Time a few real steps for the ETA."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Before training: memory per device (does it fit?) and how long training will take."""
    from tunewright.config import load_config
    from tunewright.plan import plan_training, print_plan

    result = plan_training(
        load_config(config, overrides), processes=nproc, warmup=warmup, console=err
    )
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
        return
    print_plan(result, out, err)


@app.command("eval")
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
) -> None:
    """Compare the tuned model with its base on held-out data; writes report.html."""
    from tunewright.config import load_config
    from tunewright.evaluate import evaluate_run

    cfg = load_config(config, overrides)
    if require_improvement:
        cfg.eval.require_improvement = True
    try:
        results = evaluate_run(cfg, data_file=data, console=err)
    finally:
        report = cfg.run_dir / "eval" / "report.html"
        if report.is_file():
            out.print(f"report: {report}")
    print_eval_summary(results)


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
            f"training: {t['steps']} steps in {t['train_seconds']} s, {t['tokens_per_s']} "
            f"tokens/s, loss {t['first_loss']:.4f} -> {t['final_loss']:.4f}"
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
    for name, path in result["artifacts"].items():
        if path:
            out.print(f"{name} -> {path}", soft_wrap=True)
    out.print(f"serve it: {result['serve_command']}", soft_wrap=True)


def print_eval_summary(results: dict) -> None:
    table = Table("metric", "base", "tuned", "difference (95% CI)", "p", "verdict")
    for row in results["metrics"] + results.get("probe", {}).get("metrics", []):
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


def print_data_report(report: dict) -> None:
    """The validation report as a terminal table."""
    rows = report["rows"]
    out.print(
        f"[bold]{rows['total']} rows[/bold]: {rows['train']} train, {rows['eval']} eval, "
        f"{rows['rejected']} rejected; task {report['task']}"
    )
    table = Table("check", "severity", "count", "share", "examples")
    entries = [*report["checks"].items(), ("leak", {**report["leaks"], "severity": "gate"})]
    for name, entry in entries:
        if entry["count"]:
            table.add_row(
                name,
                entry["severity"],
                str(entry["count"]),
                f"{entry['share']:.1%}",
                escape(", ".join(entry["examples"][:3])),
            )
    if table.row_count:
        out.print(table)
    else:
        out.print("[green]checks: no problems found[/green]")
    tokens = report["tokens"]
    out.print(
        f"tokens: mean {tokens['mean']}, p95 {tokens['p95']}, max {tokens['max']}; "
        f"{tokens['truncated']} over max_seq_len {tokens['max_seq_len']} "
        f"(up to {tokens['tokens_cut_max']} tokens cut)"
    )
    if report["labels"].get("counts"):
        out.print(f"labels: {report['labels']['counts']}")
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    for gate in report["gates"]:
        mark = "[green]pass[/green]" if gate["passed"] else "[red]FAIL[/red]"
        out.print(f"gate {gate['name']}: {mark} ({gate['value']} vs {gate['threshold']})")


def _yes(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[yellow]no[/yellow]"


def _register_command_groups() -> None:
    """Stages whose commands live beside their own code."""
    from tunewright.cli_export import register as register_export
    from tunewright.cli_openai import register as register_openai
    from tunewright.cli_serve import register as register_serve

    register_export(app)
    register_serve(app)
    register_openai(app)


_register_command_groups()


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
