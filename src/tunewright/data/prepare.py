"""The data stage: load -> normalise -> check -> split -> gate -> write, with nothing lost.

Every input row ends in exactly one place: `train.jsonl`, `eval.jsonl` or `rejected.jsonl` (with
its reason and source location). `validation.json` holds the report; its counts add up to the
input rows, which is checked before anything is written.
"""

from __future__ import annotations

import functools
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.config.data_source import DataSource
from tunewright.data import checks, mixing, placeholders
from tunewright.data import lengths as lengths_
from tunewright.data.accounting import check_rows_add_up
from tunewright.data.boilerplate import LEAK_WORDS, AnswerNgrams, boilerplate_report, group_cap
from tunewright.data.dedup import DuplicateIndex
from tunewright.data.lengths import Length
from tunewright.data.load import (
    LoadStats,
    RawRow,
    expand_inputs,
    hub_source,
    iter_rows,
    load_hub_dataset,
)
from tunewright.data.normalize import RowError, apply_columns, detect_shape, normalize_row
from tunewright.data.records import Record, answer_text, location, sides
from tunewright.data.speakers import apply_message_keys
from tunewright.data.split import join_groups, split_records
from tunewright.errors import TunewrightError
from tunewright.files import atomic_write_json, write_jsonl
from tunewright.models import looks_like_hub_id
from tunewright.runs import (
    DATA,
    is_up_to_date,
    stage_dir,
    stage_run,
    validation_report,
)

STAGE = DATA


class DataGateError(TunewrightError):
    """`data prepare` refused the data: a gate in the `data` section failed."""


class FeedbackDataError(TunewrightError):
    """Training was asked to do SFT on binary feedback without `data.feedback_as_sft`."""


@dataclass
class Loaded:
    """Records read from one side (train or eval), and the rows that could not be used."""

    records: list[Record] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    # id(record) -> the index of the entry (data.train / data.eval item) it was read from;
    # empty when there is one entry, which a million records would otherwise cost ~100 MB.
    entries: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(f["rows"] for f in self.files)

    def entry_of(self, record: Record) -> int:
        return self.entries[id(record)] if self.entries else 0


@dataclass
class Analysis:
    train: list[Record]
    eval: list[Record]
    rejected: list[dict[str, Any]]
    report: dict[str, Any]
    inputs: list[Path]
    # Every warning (near-duplicates, placeholders, too short ...) and every leak, one row each:
    # validation.json shows counts and the first few, findings.jsonl all of them.
    warnings: list[dict[str, Any]] = field(default_factory=list)

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
        write_jsonl(run.output("findings.jsonl"), analysis.warnings)
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
    refuse_feedback_sft(config)
    return stage_dir(config, STAGE)


def refuse_feedback_sft(config: Config) -> None:
    """SFT on binary feedback would learn the undesirable answers too, unless
    `data.feedback_as_sft` asks for SFT on the desirable ones only (the others carry weight 0,
    see records.py); `train.objective: kto` is what learns from both. Reads the prepared data's
    report, so the data is not read again."""
    if config.train.objective != "sft":
        return
    report = json.loads(validation_report(config).read_text(encoding="utf-8"))
    count = report.get("tasks", {}).get("feedback", 0)
    if not count:
        return
    examples = f"{count} prepared example{'' if count == 1 else 's'}"
    if not config.data.feedback_as_sft:
        raise FeedbackDataError(
            f"{examples} are binary feedback (an answer labelled desirable or not); "
            "train.objective sft would learn the undesirable answers as well",
            hint="Set train.objective: kto to learn from both kinds, or data.feedback_as_sft: "
            "true to train on the desirable answers only.",
        )
    if config.train.train_on_prompt:
        raise FeedbackDataError(
            f"{examples} are binary feedback, and train.train_on_prompt would put loss on "
            "every token, the undesirable answers included",
            hint="Turn train.train_on_prompt off to train on the desirable answers only.",
        )


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
    tokenizer = tokenizer if tokenizer is not None else _tokenizer_for(config)
    kept_train, train_lengths = _apply_length_check(config, tokenizer, kept_train, rejected)
    kept_eval, eval_lengths = _apply_length_check(config, tokenizer, kept_eval, rejected)
    # Answer runs found in many rows are boilerplate: neither a leak nor a reason to group rows.
    ngrams = AnswerNgrams.of([answer_text(r) for r in kept_train + kept_eval], LEAK_WORDS)
    grouping = None
    find_leaks = functools.partial(
        checks.find_leaks,
        near_duplicate_threshold=data.near_duplicate_threshold,
        ngram=LEAK_WORDS,
        boilerplate=ngrams.hashes,
    )
    if data.eval:
        train_records, eval_records = kept_train, kept_eval
        lengths = train_lengths + eval_lengths
    else:
        duplicate_groups = join_groups(
            checks.near_duplicate_groups(
                kept_train, data.near_duplicate_threshold, config.seed, duplicates=duplicates
            ),
            checks.prompt_groups(kept_train, data.near_duplicate_threshold, config.seed),
        )
        # Rows sharing a rarer answer run stay on one side too, so the split makes no leaks.
        groups, grouping = ngrams.groups(duplicate_groups, group_cap(len(kept_train)))
        train_idx, eval_idx = split_records(kept_train, data.eval_fraction, config.seed, groups)
        leaking = functools.partial(
            _split_leaks, kept_train, find_leaks, duplicates, ngrams, data.near_duplicate_threshold
        )
        train_idx, eval_idx, moved = _leaks_to_train(train_idx, eval_idx, leaking)
        if grouping is not None:
            grouping["leaks_moved_to_train"] = moved
        train_records = [kept_train[i] for i in train_idx]
        eval_records = [kept_train[i] for i in eval_idx]
        lengths = [train_lengths[i] for i in train_idx + eval_idx]
    # An automatic split has just been checked until nothing leaks (`_leaks_to_train`).
    leaks = find_leaks(train_records, eval_records) if data.eval else []
    report = build_report(
        config, train, held_out, findings, leaks, lengths, train_records, eval_records, rejected
    )
    report["boilerplate"] = boilerplate_report(ngrams, kept_train + kept_eval, grouping)
    # Weights and max_rows apply after the checks and the split, to the training rows only.
    mixed = mixing.mix(data.train, train_records, eval_records, train.entry_of, config.seed)
    if mixed.table is not None:
        train_records = mixed.records
        report["mix"] = mixed.table
        report["rows"].update(
            train=len(train_records), left_out=mixed.left_out, repeats=mixed.repeats
        )
        report["warnings"] += mixed.notes
        report["gates"] = _gates(config, report)
    # Invariant, not a user error: every input row is accounted for exactly once.
    check_rows_add_up(
        read=train.total + held_out.total,
        train=len(train_records) - mixed.repeats,
        eval=len(eval_records),
        rejected=len(rejected),
        left_out=mixed.left_out,
    )
    warnings = [_warning(f) for f in findings if f.check not in checks.REJECTING]
    warnings += [_warning(f) for f in leaks]
    return Analysis(
        train_records, eval_records, rejected, report, train.inputs + held_out.inputs, warnings
    )


def _warning(finding: checks.Finding) -> dict[str, Any]:
    entry = {"source": finding.location, "check": finding.check, "reason": finding.detail}
    if finding.other:
        entry["other"] = finding.other
    return entry


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


def _leaks_to_train(
    train_idx: list[int], eval_idx: list[int], leaking: Any
) -> tuple[list[int], list[int], int]:
    """The automatic split must not create the leakage its gate then refuses. The grouping
    links near-duplicates approximately (a crowded LSH bucket of templated rows can miss a pair
    that the exact train x eval check then finds), so an eval row that still leaks from train
    moves to train, until none does. `leaking(train_idx, eval_idx)`: positions in eval_idx of
    the rows that leak. Returns the indices and how many rows moved."""
    moved = 0
    while eval_idx:
        found = leaking(train_idx, eval_idx)
        if not found:
            break
        train_idx = train_idx + [eval_idx[k] for k in sorted(found)]
        eval_idx = [i for k, i in enumerate(eval_idx) if k not in found]
        moved += len(found)
    return train_idx, eval_idx, moved


def _split_leaks(
    records: list[Record],
    find: Any,
    duplicates: DuplicateIndex,
    ngrams: AnswerNgrams,
    threshold: float,
    train_idx: list[int],
    eval_idx: list[int],
) -> set[int]:
    """What find_leaks would find for this split, from the index and n-grams built already
    when they can tell (checks.split_leaks), else from find_leaks itself."""
    fast = checks.split_leaks(
        records,
        train_idx,
        eval_idx,
        duplicates=duplicates,
        ngrams=ngrams,
        near_duplicate_threshold=threshold,
    )
    if fast is not None:
        return fast
    found = find([records[i] for i in train_idx], [records[i] for i in eval_idx])
    return {f.index for f in found}


def _apply_length_check(
    config: Config, tokenizer: Any, records: list[Record], rejected: list[dict[str, Any]]
) -> tuple[list[Record], list[Length]]:
    """(records kept, the token length of each). A pair over `max_seq_len` is rejected, naming
    the side: truncation would cut its two answers differently, or cut off what tells them apart.
    Other examples are kept and counted (training truncates them)."""
    limit = config.data.max_seq_len
    measured = lengths_.measure(tokenizer, records, limit, config.seed)
    kept, lengths = [], []
    for index, record in enumerate(records):
        over = [
            f"{name} side {n} tokens"
            for (name, _), n in zip(sides(record), measured.lengths[index], strict=True)
            if n is not None and n > limit and name
        ]
        if over:
            reason = f"pair over data.max_seq_len {limit}: {' and '.join(over)}"
            rejected.append(_rejection(record["source"], "pair_too_long", reason, record))
            continue
        kept.append(record)
        in_sample = measured.sampled is None or measured.sampled[index]
        lengths.append(Length(measured.longest(index), in_sample))
    return kept, lengths


# ---------------------------------------------------------------------------------------------
# Loading one side


def load_side(config: Config, items: list[str | DataSource], side: str) -> Loaded:
    """Read and normalise every row of the listed files, folders or hub datasets."""
    loaded = Loaded()
    stats = LoadStats()
    for index, item in enumerate(items):
        first_record = len(loaded.records)
        entry = item if isinstance(item, DataSource) else DataSource(path=item)
        path = config.resolve(entry.path)
        if not path.exists() and looks_like_hub_id(entry.path):
            sources: list[tuple[str, Any]] = [
                (hub_source(entry.path), load_hub_dataset(entry.path))
            ]
        else:
            files = expand_inputs([path])
            loaded.inputs.extend(files)
            sources = [(str(f), iter_rows(f, stats)) for f in files]
        for name, rows in sources:
            count, fmt = _normalise_rows(config, rows, loaded, entry)
            loaded.files.append(
                {
                    "file": name,
                    "side": side,
                    "rows": count,
                    "format": fmt,
                    "blank_lines": stats.blank_lines.get(name, 0),
                }
            )
        if len(items) > 1:  # with one entry every record is its (entry_of gives 0)
            loaded.entries.update((id(r), index) for r in loaded.records[first_record:])
    return loaded


def _normalise_rows(
    config: Config, rows: Any, loaded: Loaded, entry: DataSource
) -> tuple[int, str | None]:
    """Normalise one source's rows into `loaded`; returns (row count, shape used). The entry's
    own format, column map and message keys win over the data section's.

    A source holds one shape, its first recognised row's: a later row recognisably in another
    is rejected as `mixed_shapes` rather than read as something it is not (a chat file's row
    with a `label` is feedback, and chat training would learn its undesirable answer)."""
    data = config.data
    fmt_setting = data.format if entry.format == "auto" else entry.format
    declared = None if fmt_setting == "auto" else fmt_setting
    columns = data.columns if entry.columns is None else entry.columns
    first: tuple[str, int] | None = None  # the source's shape and the line that set it
    count = 0
    for row in rows:
        count += 1
        if row.error is not None:
            loaded.rejected.append(_rejection(_source(row), "unreadable", row.error, raw=row.raw))
            continue
        fields = apply_columns(row.data or {}, columns)
        if entry.messages is not None:
            try:
                fields = apply_message_keys(fields, entry.messages)
            except RowError as exc:
                loaded.rejected.append(_rejection(_source(row), "bad_row", str(exc), fields))
                continue
        shape = detect_shape(fields, declared)
        if first is not None and shape not in (None, first[0]):
            reason = _mixed_reason(row, shape, fields, first)
            loaded.rejected.append(_rejection(_source(row), "mixed_shapes", reason, fields))
            continue
        if first is None and shape is not None:
            first = (shape, row.line)
        # A row no shape fits is read as the source's shape, to name the field it lacks.
        fmt = first[0] if first else declared
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
    return count, first[0] if first else declared


def _mixed_reason(row: RawRow, shape: str, fields: dict[str, Any], first: tuple[str, int]) -> str:
    return (
        f"mixed shapes: this row is {shape} (columns {sorted(fields)[:12]}), but "
        f"{row.file}:{first[1]} made this file {first[0]}; a file holds one shape"
    )


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
    from tunewright.models import load_base_tokenizer

    return load_base_tokenizer(config)[0]


# ---------------------------------------------------------------------------------------------
# Report and gates


def build_report(
    config: Config,
    train: Loaded,
    held_out: Loaded,
    findings: list[checks.Finding],
    leaks: list[checks.Finding],
    lengths: list[Length],
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
        "tasks": dict(Counter(r["task"] for r in kept).most_common()),
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
    for check in ("unreadable", "unknown_format", "mixed_shapes", "bad_row"):
        table[check] = _rejected_entry(rejected, check, total)
    by_check: dict[str, list[checks.Finding]] = {}
    for finding in findings:
        by_check.setdefault(finding.check, []).append(finding)
    for check in checks.CHECKS:
        table[check] = _examples(by_check.get(check, []), total)
        table[check]["severity"] = "error" if check in checks.REJECTING else "warning"
    # Records per distinct placeholder: one template gap repeated is one fix at the source.
    table["placeholder"]["placeholders"] = placeholders.count_placeholders(
        f.values for f in by_check.get("placeholder", [])
    )
    table["pair_too_long"] = _rejected_entry(rejected, "pair_too_long", total)
    return table


def _rejected_entry(rejected: list[dict[str, Any]], check: str, total: int) -> dict[str, Any]:
    hits = [r for r in rejected if r["check"] == check]
    return {
        "count": len(hits),
        "share": _share(len(hits), total),
        "severity": "error",
        "examples": [r["source"] for r in hits[:10]],
        "reasons": [r["reason"] for r in hits[:10]],
    }


def _examples(findings: list[checks.Finding], total: int) -> dict[str, Any]:
    return {
        "count": len(findings),
        "share": _share(len(findings), total),
        "examples": [f.location for f in findings[:10]],
        "reasons": [f.detail + (f" (other: {f.other})" if f.other else "") for f in findings[:10]],
    }


def _token_stats(lengths: list[Length], records: list[Record], max_len: int) -> dict[str, Any]:
    """Over-long counts are exact (every row that could be over was tokenized); mean and
    percentiles come from the random sample when not every row was (lengths.py)."""
    over = [
        (n.tokens, r)
        for n, r in zip(lengths, records, strict=True)
        if n.tokens is not None and n.tokens > max_len
    ]
    cut = [n - max_len for n, _ in over]
    stats = [n.tokens for n in lengths if n.in_sample and n.tokens is not None]
    measured = [n.tokens for n in lengths if n.tokens is not None]
    return {
        "max_seq_len": max_len,
        "count": len(lengths),
        "tokenized": len(measured),
        "statistics_from": len(stats),
        "mean": round(statistics.fmean(stats), 1) if stats else 0,
        "p50": _percentile(stats, 50),
        "p95": _percentile(stats, 95),
        "max": max(measured, default=0),
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
