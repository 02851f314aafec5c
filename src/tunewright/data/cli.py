"""`tunewright data ...`: inspect, validate, prepare, export and render training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tunewright.console import ConfigArg, OverridesArg, err, out
from tunewright.errors import TunewrightError

data_app = typer.Typer(
    help="Load, check, split, export and render training data.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    data_app.command("inspect")(data_inspect)
    data_app.command("validate")(data_validate)
    data_app.command("prepare")(data_prepare)
    data_app.command("export")(data_export)
    data_app.command("render")(data_render)
    data_app.command("import-logs")(data_import_logs)
    app.add_typer(data_app, name="data")


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


def data_prepare(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Check, split and write train/eval/rejected files and validation.json to the run folder."""
    from tunewright.config import load_config
    from tunewright.data.prepare import STAGE, DataGateError, prepare_data
    from tunewright.runs import stage_dir, validation_report

    cfg = load_config(config, overrides)
    try:
        analysis = prepare_data(cfg)
    except DataGateError:
        report_path = validation_report(cfg)
        if report_path.is_file():
            print_data_report(json.loads(report_path.read_text(encoding="utf-8")))
        raise
    print_data_report(analysis.report)
    out.print(f"[green]wrote[/green] {stage_dir(cfg, STAGE)}")


def data_export(
    config: ConfigArg,
    overrides: OverridesArg = None,
    to: Annotated[
        str, typer.Option("--to", help="openai, alpaca, sharegpt, openai-dpo or trl.")
    ] = "openai",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
) -> None:
    """Export the prepared train/eval data to OpenAI JSONL, alpaca JSON or sharegpt JSON;
    preference pairs to OpenAI DPO JSONL or TRL JSONL, binary feedback to TRL JSONL."""
    from tunewright.config import load_config
    from tunewright.data.export import CONVERTERS, SUFFIX, export_records
    from tunewright.data.prepare import STAGE
    from tunewright.files import read_jsonl, write_jsonl
    from tunewright.runs import MANIFEST, data_export_dir, data_split, stage_dir

    if to not in CONVERTERS:
        raise TunewrightError(
            f"--to {to}: unknown format", hint=f"Use one of: {', '.join(CONVERTERS)}."
        )
    cfg = load_config(config, overrides)
    data_dir = stage_dir(cfg, STAGE)
    target = out_dir or data_export_dir(cfg)
    for split in ("train", "eval"):
        source = data_split(cfg, split)
        if not (data_dir / MANIFEST).is_file() or not source.is_file():
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


def data_render(
    config: ConfigArg,
    overrides: OverridesArg = None,
    index: Annotated[list[int] | None, typer.Option("--index", "-i", help="Example index.")] = None,
    split: Annotated[str, typer.Option(help="train or eval.")] = "train",
) -> None:
    """Show the exact tokens an example trains on, marking those that carry loss; both sides
    of a preference pair, and the label of binary feedback."""
    from tunewright.chat import render_markup
    from tunewright.config import load_config
    from tunewright.data.prepare import load_side
    from tunewright.data.records import location, render_sides
    from tunewright.files import read_jsonl
    from tunewright.models import load_base_tokenizer
    from tunewright.runs import data_split

    cfg = load_config(config, overrides)
    prepared = data_split(cfg, split)
    if prepared.is_file():
        records = read_jsonl(prepared)
    else:
        records = load_side(
            cfg, cfg.data.train if split == "train" else cfg.data.eval, split
        ).records
    tokenizer, _ = load_base_tokenizer(cfg)
    for i in index or [0]:
        if not 0 <= i < len(records):
            raise TunewrightError(f"--index {i}: {split} has {len(records)} examples")
        record = records[i]
        for side, rendered in render_sides(
            tokenizer, record, cfg.train.train_on_prompt, cfg.data.max_seq_len
        ):
            out.rule(f"{split}[{i}] {location(record)}" + (f" {side}" if side else ""))
            out.print(render_markup(tokenizer, rendered), highlight=False)
            out.print(_token_summary(rendered))
        if record.get("task") == "feedback":
            out.print(_feedback_label(record["label"]))


def data_import_logs(
    log: Annotated[
        Path, typer.Argument(help="A `tunewright serve` request log (serve.log_content: true).")
    ],
    overrides: OverridesArg = None,
    feedback: Annotated[
        Path | None,
        typer.Option(help="Judgements, JSONL (default: LOG with .feedback.jsonl for .jsonl)."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: <LOG stem>-import beside LOG)."),
    ] = None,
) -> None:
    """Turn judged served exchanges into training data: good ones into SFT rows, corrected ones
    into preference pairs (correction chosen, served answer rejected), through the data checks.
    Overrides (model.name, data.*) set the checks as in `data validate`."""
    from tunewright.config import load_config
    from tunewright.data.feedback import OUTCOMES, REJECTED, import_logs

    report = import_logs(log, feedback, out_dir, load_config(None, overrides))
    counts = report["outcomes"]
    shown = [f"{counts[k]} {label}" for k, label in OUTCOMES.items() if counts[k]]
    out.print(
        f"[bold]{escape(str(log))}[/bold]: {sum(counts.values())} requests: "
        + escape("; ".join(shown))
    )
    judged = report["judgements"]
    out.print(
        f"{escape(report['feedback'])}: {judged['lines']} judgements, {judged['overridden']} "
        f"replaced by a later line, {judged['unknown_request']} for requests not in the log"
    )
    for name, checked in report["checks"].items():
        if checked is not None:
            out.rule(name)
            print_data_report(checked)
    out.print(
        f"[green]wrote[/green] {escape(report['out_dir'])}: {report['sft_rows']} SFT rows, "
        f"{report['preference_pairs']} preference pairs, {report['rejected']} rejected by the "
        f"checks ({REJECTED})"
    )


def _token_summary(rendered: Any) -> str:
    loss = sum(1 for label in rendered.labels if label != -100)
    cut = rendered.full_length > len(rendered.input_ids)
    return f"{len(rendered.input_ids)} tokens, {loss} with loss" + (
        f", truncated from {rendered.full_length}" if cut else ""
    )


def _feedback_label(label: bool) -> str:
    if label:
        return "label: desirable (SFT with data.feedback_as_sft trains on this answer)"
    return "label: undesirable (weight 0: SFT never trains on this answer)"


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
    sampled = tokens["statistics_from"] < tokens["count"]
    out.print(
        f"tokens: mean {tokens['mean']}, p95 {tokens['p95']}"
        + (f" (from a sample of {tokens['statistics_from']})" if sampled else "")
        + f", max {tokens['max']}; {tokens['truncated']} over max_seq_len "
        f"{tokens['max_seq_len']} (up to {tokens['tokens_cut_max']} tokens cut)"
    )
    if report["labels"].get("counts"):
        out.print(f"labels: {escape(str(report['labels']['counts']))}")  # labels are data
    _print_boilerplate(report.get("boilerplate"))
    _print_mix(report.get("mix"))
    # Records per distinct placeholder, most common first; placeholders are data, escaped.
    found = report["checks"].get("placeholder", {}).get("placeholders", {})
    if found:
        shown = ", ".join(f"{p} x{n}" for p, n in list(found.items())[:10])
        out.print(f"placeholders: {escape(shown)}" + (" ..." if len(found) > 10 else ""))
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    for gate in report["gates"]:
        mark = "[green]pass[/green]" if gate["passed"] else "[red]FAIL[/red]"
        out.print(f"gate {gate['name']}: {mark} ({gate['value']} vs {gate['threshold']})")


def _print_mix(entries: list[dict] | None) -> None:
    """Each data.train entry's training rows and share before and after weight / max_rows."""
    if not entries:
        return
    table = Table(title="mix (training rows, after the checks and the split)")
    for column in ("source", "weight", "max_rows", "before", "after", "repeats", "left out"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            escape(e["source"]),
            "-" if e["weight"] is None else f"{e['weight']:g}",
            "-" if e["max_rows"] is None else str(e["max_rows"]),
            f"{e['rows_before']} ({e['share_before']:.1%})",
            f"{e['rows_after']} ({e['share_after']:.1%})",
            str(e["repeats"]),
            str(e["left_out"]),
        )
    out.print(table)


def _print_boilerplate(entry: dict | None) -> None:
    """Answer runs in many rows: left out of the leak check and the split's grouping."""
    if not entry or not entry["count"]:
        return
    out.print(
        f"boilerplate: {entry['count']} runs of {entry['ngram_words']} answer words in "
        f"{entry['min_rows']}+ rows each, not counted as leaks"
    )
    for phrase in entry["phrases"][:3]:  # phrases are data, escaped
        where = ", ".join(phrase["examples"])
        out.print(f'  "{escape(phrase["text"])}" in {phrase["rows"]} rows ({escape(where)})')
