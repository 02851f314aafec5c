"""The data stage: load -> normalise -> check -> split -> gate -> write, with nothing lost.

Every input row ends in exactly one place: `train.jsonl`, `eval.jsonl` or `rejected.jsonl` (with
its reason and source location). `validation.json` holds the report; its counts add up to the
input rows, which is asserted before anything is written.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.data import checks
from tunewright.data.dedup import DuplicateIndex
from tunewright.data.load import LoadStats, RawRow, expand_inputs, iter_rows, load_hub_dataset
from tunewright.data.normalize import RowError, apply_columns, detect_format, normalize_row
from tunewright.data.records import Record, location
from tunewright.data.split import split_records
from tunewright.errors import TunewrightError
from tunewright.files import atomic_write_json, write_jsonl
from tunewright.models import looks_like_hub_id
from tunewright.runs import (
    DATA,
    is_up_to_date,
    stage_dir,
    stage_run,
)

STAGE = DATA


class DataGateError(TunewrightError):
    """`data prepare` refused the data: a gate in the `data` section failed."""


@dataclass
class Loaded:
    """Records read from one side (train or eval), and the rows that could not be used."""

    records: list[Record] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(f["rows"] for f in self.files)


@dataclass
class Analysis:
    train: list[Record]
    eval: list[Record]
    rejected: list[dict[str, Any]]
    report: dict[str, Any]
    inputs: list[Path]

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        return [g for g in self.report["gates"] if not g["passed"]]


# ---------------------------------------------------------------------------------------------
# The stage


def prepare_data(config: Config, tokenizer: Any | None = None) -> Analysis:
    """Run the data stage and write `<run>/data/`. Raises DataGateError when a gate fails, after
    writing the report and rejected rows so the user can see why."""
    analysis = analyze(config, tokenizer)
    with stage_run(config, STAGE, inputs=analysis.inputs) as run:
        write_jsonl(run.output("rejected.jsonl"), analysis.rejected)
        atomic_write_json(run.output("validation.json"), analysis.report)
        if analysis.failed_gates:
            for stale in ("train.jsonl", "eval.jsonl"):
                (run.dir / stale).unlink(missing_ok=True)
            raise DataGateError(gate_message(analysis), hint=gate_hint(analysis))
        write_jsonl(run.output("train.jsonl"), analysis.train)
        write_jsonl(run.output("eval.jsonl"), analysis.eval)
        run.extra["counts"] = analysis.report["rows"]
    return analysis


def ensure_prepared(config: Config, console: Any, tokenizer: Any | None = None) -> Path:
    """Run the data stage unless its output is up to date for this config and these input
    files; returns the data folder. Train, the launcher and the OpenAI backend all go through
    here, so a changed data file is never trained on stale."""
    if not is_up_to_date(config, STAGE):
        console.print("[bold]data[/bold]: preparing (no up-to-date prepared data for this config)")
        prepare_data(config, tokenizer)
    return stage_dir(config, STAGE)


def analyze(config: Config, tokenizer: Any | None = None) -> Analysis:
    """Everything `prepare` decides, without writing: records, rejections, split and report."""
    data = config.data
    train = load_side(config, data.train, "train")
    held_out = load_side(config, data.eval, "eval") if data.eval else Loaded()
    rejected = train.rejected + held_out.rejected
    findings: list[checks.Finding] = []
    # One MinHash index serves the checks and, after rejection, the split's duplicate groups.
    duplicates = checks.duplicate_index(train.records, config.seed)
    kept_train = _apply_checks(config, train.records, rejected, findings, duplicates)
    kept_eval = _apply_checks(config, held_out.records, rejected, findings)
    if data.eval:
        train_records, eval_records = kept_train, kept_eval
    else:
        groups = checks.near_duplicate_groups(
            kept_train, data.near_duplicate_threshold, config.seed, duplicates=duplicates
        )
        train_idx, eval_idx = split_records(kept_train, data.eval_fraction, config.seed, groups)
        train_records = [kept_train[i] for i in train_idx]
        eval_records = [kept_train[i] for i in eval_idx]
    leaks = checks.find_leaks(
        train_records, eval_records, near_duplicate_threshold=data.near_duplicate_threshold
    )
    tokenizer = tokenizer if tokenizer is not None else _tokenizer_for(config)
    lengths = _token_lengths(tokenizer, train_records + eval_records)
    report = build_report(
        config, train, held_out, findings, leaks, lengths, train_records, eval_records, rejected
    )
    total = train.total + held_out.total
    # Invariant, not a user error: every input row is accounted for exactly once.
    assert len(train_records) + len(eval_records) + len(rejected) == total, "rows lost"
    return Analysis(train_records, eval_records, rejected, report, train.inputs + held_out.inputs)


def _apply_checks(
    config: Config,
    records: list[Record],
    rejected: list[dict[str, Any]],
    findings: list[checks.Finding],
    duplicates: DuplicateIndex | None = None,
) -> list[Record]:
    """Run the per-record checks; records with a rejecting finding move to `rejected`."""
    found = checks.check_records(
        records,
        min_words=config.data.min_words,
        near_duplicate_threshold=config.data.near_duplicate_threshold,
        seed=config.seed,
        duplicates=duplicates,
    )
    findings.extend(found)
    reasons: dict[int, checks.Finding] = {}
    for finding in found:
        if finding.check in checks.REJECTING and finding.index not in reasons:
            reasons[finding.index] = finding
    for index, finding in sorted(reasons.items()):
        detail = finding.detail + (f" (first seen at {finding.other})" if finding.other else "")
        rejected.append(_rejection(records[index]["source"], finding.check, detail, records[index]))
    return [r for i, r in enumerate(records) if i not in reasons]


# ---------------------------------------------------------------------------------------------
# Loading one side


def load_side(config: Config, items: list[str], side: str) -> Loaded:
    """Read and normalise every row of the listed files, folders or hub datasets."""
    loaded = Loaded()
    stats = LoadStats()
    for item in items:
        path = config.resolve(item)
        if not path.exists() and looks_like_hub_id(item):
            sources: list[tuple[str, Any]] = [(f"hub:{item}", load_hub_dataset(item))]
        else:
            files = expand_inputs([path])
            loaded.inputs.extend(files)
            sources = [(str(f), iter_rows(f, stats)) for f in files]
        for name, rows in sources:
            count, fmt = _normalise_rows(config, rows, loaded)
            loaded.files.append(
                {
                    "file": name,
                    "side": side,
                    "rows": count,
                    "format": fmt,
                    "blank_lines": stats.blank_lines.get(name, 0),
                }
            )
    return loaded


def _normalise_rows(config: Config, rows: Any, loaded: Loaded) -> tuple[int, str | None]:
    """Normalise one source's rows into `loaded`; returns (row count, format used)."""
    data = config.data
    fmt = None if data.format == "auto" else data.format
    count = 0
    for row in rows:
        count += 1
        if row.error is not None:
            loaded.rejected.append(_rejection(_source(row), "unreadable", row.error, raw=row.raw))
            continue
        fields = apply_columns(row.data or {}, data.columns)
        fmt = fmt or detect_format(fields)
        if fmt is None:
            reason = f"no known format fits columns {sorted(fields)}; set data.format/columns"
            loaded.rejected.append(_rejection(_source(row), "unknown_format", reason, fields))
            continue
        try:
            record = normalize_row(
                fields, fmt, row.file, row.line, task=data.task, system_prompt=data.system_prompt
            )
        except RowError as exc:
            loaded.rejected.append(_rejection(_source(row), "bad_row", str(exc), fields))
            continue
        loaded.records.append(record)
    return count, fmt


def _source(row: RawRow) -> dict[str, Any]:
    return {"file": row.file, "line": row.line}


def _rejection(
    source: dict[str, Any], check: str, reason: str, row: Any = None, raw: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "source": f"{source['file']}:{source['line']}",
        "check": check,
        "reason": reason,
    }
    if row is not None:
        entry["row"] = row
    if raw is not None:
        entry["raw"] = raw
    return entry


# ---------------------------------------------------------------------------------------------
# Token lengths


def _tokenizer_for(config: Config) -> Any:
    from tunewright.models import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model(config.model.name))


def _token_lengths(tokenizer: Any, records: list[Record]) -> list[int]:
    """Length of each example as the model will see it: through the chat template when the
    tokenizer has one, else prompt and answer as plain text (encoders)."""
    if not records:
        return []
    conversations = [_conversation(r) for r in records]
    if getattr(tokenizer, "chat_template", None):
        from tunewright.chat import token_lengths

        return token_lengths(tokenizer, conversations, tools=[r.get("tools") for r in records])
    texts = ["\n".join(m["content"] for m in conv) for conv in conversations]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]


def _conversation(record: Record) -> list[dict[str, Any]]:
    if record["task"] == "preference":
        longer = max(record.get("chosen") or "", record.get("rejected") or "", key=len)
        return [*record["messages"], {"role": "assistant", "content": longer}]
    return record["messages"]


# ---------------------------------------------------------------------------------------------
# Report and gates


def build_report(
    config: Config,
    train: Loaded,
    held_out: Loaded,
    findings: list[checks.Finding],
    leaks: list[checks.Finding],
    lengths: list[int],
    train_records: list[Record],
    eval_records: list[Record],
    rejected: list[dict[str, Any]],
) -> dict[str, Any]:
    total = train.total + held_out.total
    kept = train_records + eval_records
    task = _main_task(kept)
    report: dict[str, Any] = {
        "rows": {
            "total": total,
            "train": len(train_records),
            "eval": len(eval_records),
            "rejected": len(rejected),
        },
        "files": train.files + held_out.files,
        "task": task,
        "checks": _check_table(findings, rejected, total),
        "leaks": _examples(leaks, total),
        "tokens": _token_stats(lengths, kept, config.data.max_seq_len),
        "labels": checks.label_distribution(kept),
        "warnings": checks.minimum_count_warnings(task, len(kept)) if task else [],
    }
    report["gates"] = _gates(config, report)
    return report


def _main_task(records: list[Record]) -> str | None:
    counts = Counter(r["task"] for r in records)
    return counts.most_common(1)[0][0] if counts else None


def _check_table(
    findings: list[checks.Finding], rejected: list[dict[str, Any]], total: int
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for check in ("unreadable", "unknown_format", "bad_row"):
        hits = [r for r in rejected if r["check"] == check]
        table[check] = {
            "count": len(hits),
            "share": _share(len(hits), total),
            "severity": "error",
            "examples": [r["source"] for r in hits[:10]],
            "reasons": [r["reason"] for r in hits[:10]],
        }
    by_check: dict[str, list[checks.Finding]] = {}
    for finding in findings:
        by_check.setdefault(finding.check, []).append(finding)
    for check in checks.CHECKS:
        table[check] = _examples(by_check.get(check, []), total)
        table[check]["severity"] = "error" if check in checks.REJECTING else "warning"
    return table


def _examples(findings: list[checks.Finding], total: int) -> dict[str, Any]:
    return {
        "count": len(findings),
        "share": _share(len(findings), total),
        "examples": [f.location for f in findings[:10]],
        "reasons": [f.detail + (f" (other: {f.other})" if f.other else "") for f in findings[:10]],
    }


def _token_stats(lengths: list[int], records: list[Record], max_len: int) -> dict[str, Any]:
    over = [(n, r) for n, r in zip(lengths, records, strict=True) if n > max_len]
    cut = [n - max_len for n, _ in over]
    return {
        "max_seq_len": max_len,
        "count": len(lengths),
        "mean": round(statistics.fmean(lengths), 1) if lengths else 0,
        "p50": _percentile(lengths, 50),
        "p95": _percentile(lengths, 95),
        "max": max(lengths, default=0),
        "truncated": len(over),
        "truncated_share": _share(len(over), len(lengths)),
        "tokens_cut_total": sum(cut),
        "tokens_cut_max": max(cut, default=0),
        "truncated_examples": [location(r) for _, r in over[:10]],
    }


def _percentile(values: list[int], q: int) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def _gates(config: Config, report: dict[str, Any]) -> list[dict[str, Any]]:
    data, rows = config.data, report["rows"]
    invalid = _share(rows["rejected"], rows["total"])
    truncated = report["tokens"]["truncated_share"]
    leaks = report["leaks"]["count"]
    return [
        {
            "name": "data.max_invalid_fraction",
            "value": invalid,
            "threshold": data.max_invalid_fraction,
            "passed": invalid <= data.max_invalid_fraction,
        },
        {
            "name": "data.max_truncated_fraction",
            "value": truncated,
            "threshold": data.max_truncated_fraction,
            "passed": truncated <= data.max_truncated_fraction,
        },
        {
            "name": "data.allow_leakage",
            "value": leaks,
            "threshold": data.allow_leakage,
            "passed": data.allow_leakage or leaks == 0,
        },
        {
            "name": "train examples",
            "value": rows["train"],
            "threshold": 1,
            "passed": rows["train"] >= 1,
        },
    ]


def gate_message(analysis: Analysis) -> str:
    rows = analysis.report["rows"]
    lines = [
        f"data checks failed ({rows['total']} rows: {rows['train']} train, "
        f"{rows['eval']} eval, {rows['rejected']} rejected)"
    ]
    for gate in analysis.failed_gates:
        name, value, threshold = gate["name"], gate["value"], gate["threshold"]
        if name == "data.allow_leakage":
            lines.append(f"  - {value} eval examples leak from train ({name} is false)")
        elif name == "train examples":
            lines.append("  - no training examples are left")
        else:
            what = "of rows rejected" if "invalid" in name else "of examples over max_seq_len"
            lines.append(f"  - {value:.1%} {what}, more than {name} = {threshold:.1%}")
    return "\n".join(lines)


def gate_hint(analysis: Analysis) -> str:
    return (
        "See validation.json and rejected.jsonl in the run's data folder; fix the rows, or "
        "relax the gate in the config (e.g. data.allow_leakage=true)."
    )
