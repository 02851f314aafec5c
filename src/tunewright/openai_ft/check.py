"""Check an OpenAI fine-tuning file before uploading it: OpenAI's data-preparation checks, the
data stage's own checks, token counts against the model's limit, and the billing estimate.

Every problem names its line (1-based). The format checks follow OpenAI's data-preparation guide
for chat files (`{"messages": [...], "tools": [...]}`), the DPO shape (`{"input": {...},
"preferred_output": [...], "non_preferred_output": [...]}`) and reinforcement rows (`messages`
ending on the user's turn, plus fields for the graders); a file is one of them, decided by its
first JSON object unless the caller says. Chat and DPO rows that pass them are normalised like
the data stage does and run through `tunewright.data.checks.check_records` (empty answers,
duplicates, role order, tool-call JSON, encoding), so nothing is checked twice; reinforcement
rows hold prompts without answers, which those checks are not made for.

Over-long examples are warnings: OpenAI truncates them to the model's limit and bills the limit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewright.config.openai_section import DEFAULT_MODEL
from tunewright.data import checks as data_checks
from tunewright.data.normalize import RowError, normalize_row
from tunewright.data.records import Record, make_record
from tunewright.openai_ft import tokens
from tunewright.openai_ft.rows import Kind, row_problems, single_answer

Severity = Literal["error", "warning"]

MIN_EXAMPLES = 10  # OpenAI refuses training files with fewer
RFT_NOTES = [
    "reinforcement fine-tuning is billed by training time, not by tokens: no billed-token "
    "estimate; token counts are the prompts'",
    "reinforcement rows are checked for their shape only: the data stage's checks (duplicates, "
    "empty answers, encoding) are made for examples with answers",
]
BLANK_LINE = "blank line (one JSON object a line)"

# Report order; every check a Problem can carry. The data stage's come from data.checks.CHECKS.
FORMAT_CHECKS = (
    "invalid_json",
    "not_an_object",
    "missing_messages",
    "messages_not_list",
    "message_not_object",
    "unknown_role",
    "missing_content",
    "unknown_key",
    "legacy_function_calling",
    "no_assistant_message",
    "bad_weight",
    "weight_not_on_assistant",
    "missing_input",
    "bad_preference_output",
    "last_not_user",
    "bad_row",
    "too_few_examples",
)
CHECK_ORDER = (*FORMAT_CHECKS, *data_checks.CHECKS, "over_token_limit")


@dataclass
class Problem:
    check: str  # one of CHECK_ORDER
    line: int | None  # 1-based line in the file; None for whole-file problems
    detail: str
    severity: Severity = "error"


@dataclass
class CheckReport:
    path: str
    model: str
    kind: Kind
    examples: int  # non-blank lines: what OpenAI counts as examples
    problems: list[Problem]
    token_counts: list[int]  # one per example that passed the format checks
    encoding: str
    exact_counts: bool
    limit: int | None
    epochs: int
    epochs_source: Literal["auto", "explicit"]
    billed_tokens: int
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def over_limit(self) -> int:
        return sum(1 for p in self.problems if p.check == "over_token_limit")

    def by_check(self) -> list[dict[str, Any]]:
        """One row per check that found something: count, first lines and first detail."""
        rows: dict[str, dict[str, Any]] = {}
        for problem in self.problems:
            row = rows.setdefault(
                problem.check,
                {"check": problem.check, "severity": problem.severity, "count": 0, "lines": []},
            )
            row["count"] += 1
            if problem.line is not None and len(row["lines"]) < 10:
                row["lines"].append(problem.line)
            row.setdefault("detail", problem.detail)
        rank = {check: n for n, check in enumerate(CHECK_ORDER)}
        return sorted(rows.values(), key=lambda r: (r["severity"] != "error", rank[r["check"]]))

    def token_stats(self) -> dict[str, Any]:
        counts = self.token_counts
        return {
            "min": min(counts, default=0),
            "mean": round(sum(counts) / len(counts), 1) if counts else 0,
            "max": max(counts, default=0),
            "total": sum(counts),
            "over_limit": self.over_limit,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["token_counts"]  # one number per example: too long for a report
        data.update(
            ok=self.ok,
            errors=len(self.errors),
            warnings=len(self.warnings),
            checks=self.by_check(),
            tokens=self.token_stats(),
        )
        return data


# ---------------------------------------------------------------------------------------------
# The check


def check_file(
    path: str | Path,
    model: str = DEFAULT_MODEL,
    epochs: int | None = None,
    *,
    kind: Kind | None = None,
    min_examples: int = MIN_EXAMPLES,
    min_words: int = 5,
    near_duplicate_threshold: float = 0.85,
    seed: int = 0,
) -> CheckReport:
    """Every problem in an OpenAI fine-tuning JSONL file, with token counts and billing.

    `epochs` None means OpenAI's default for the example count. `kind` None reads the shape
    from the first row. `min_examples` is 10 for training files; validation files have no
    minimum (pass 0)."""
    path = Path(path)
    rows, problems, examples = _read_rows(path)
    kind = kind or _kind_of(next((row for _, row in rows if isinstance(row, dict)), {}))
    valid, records = _check_rows(rows, kind, str(path), problems)
    problems.extend(_data_stage_problems(records, min_words, near_duplicate_threshold, seed))
    if examples < min_examples:
        detail = f"{examples} examples; OpenAI needs at least {min_examples}"
        problems.append(Problem("too_few_examples", None, detail))
    counter = tokens.counter_for(model)
    info = tokens.model_info(model)
    counts = [tokens.count_example(counter, row) for _, row in valid]
    problems.extend(_over_limit(valid, counts, info.limit))
    epoch_count = tokens.resolve_epochs(examples, epochs)
    rank = {check: n for n, check in enumerate(CHECK_ORDER)}
    # By line; whole-file problems last.
    problems.sort(key=lambda p: (p.line is None, p.line or 0, rank[p.check]))
    return CheckReport(
        path=str(path),
        model=model,
        kind=kind,
        examples=examples,
        problems=problems,
        token_counts=counts,
        encoding=counter.name,
        exact_counts=counter.exact,
        limit=info.limit,
        epochs=epoch_count,
        epochs_source="auto" if epochs is None else "explicit",
        # reinforcement fine-tuning is billed by training time, not by tokens
        billed_tokens=0 if kind == "rft" else tokens.billed_tokens(counts, info.limit, epoch_count),
        notes=_notes(info, counter) + (RFT_NOTES if kind == "rft" else []),
    )


def _kind_of(first: dict[str, Any]) -> Kind:
    """The shape of a file, from its first row: a prompt that ends on the user's turn is a
    reinforcement row (a chat row ends on the answer it teaches)."""
    if "input" in first:
        return "dpo"
    messages = first.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    return "rft" if isinstance(last, dict) and last.get("role") == "user" else "chat"


def _check_rows(
    rows: list[tuple[int, Any]], kind: Kind, file: str, problems: list[Problem]
) -> tuple[list[tuple[int, dict[str, Any]]], list[Record]]:
    """Shape-check each row (problems go to `problems`); returns the rows that passed, with
    their line, and the canonical record of each."""
    valid: list[tuple[int, dict[str, Any]]] = []
    records: list[Record] = []
    for line, row in rows:
        found = row_problems(row, kind)
        if kind == "rft":  # prompts without answers: nothing for the data stage's checks
            problems.extend(Problem(check, line, detail) for check, detail in found)
            valid += [] if found else [(line, row)]
            continue
        record = None if found else _to_record(row, kind, file, line, found)
        problems.extend(Problem(check, line, detail) for check, detail in found)
        if record is not None:
            valid.append((line, row))
            records.append(record)
    return valid, records


def _read_rows(path: Path) -> tuple[list[tuple[int, Any]], list[Problem], int]:
    """(line, parsed JSON) for each line that parses, problems for those that do not, and the
    number of non-blank lines (OpenAI's example count)."""
    rows: list[tuple[int, Any]] = []
    problems: list[Problem] = []
    lines = path.read_bytes().split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline that ends the last line does not start another
    for number, raw in enumerate(lines, 1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
        if not raw.strip():
            problems.append(Problem("invalid_json", number, BLANK_LINE))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem("invalid_json", number, f"not UTF-8: byte {exc.start}"))
            continue
        try:
            rows.append((number, json.loads(text)))
        except json.JSONDecodeError as exc:
            detail = f"invalid JSON: {exc.msg} at column {exc.colno}"
            problems.append(Problem("invalid_json", number, detail))
    blank = sum(1 for p in problems if p.detail == BLANK_LINE)
    return rows, problems, len(lines) - blank


# ---------------------------------------------------------------------------------------------
# The data stage's checks and token limits


def _to_record(
    row: dict[str, Any], kind: Kind, file: str, line: int, found: list[tuple[str, str]]
) -> Record | None:
    """The canonical record the data stage would make, or None (with a `bad_row` problem) when
    the row cannot become one."""
    try:
        if kind == "chat":
            return normalize_row(row, "openai", file, line)
        prompt = normalize_row(row["input"], "openai", file, line)
        chosen = single_answer(row["preferred_output"])
        rejected = single_answer(row["non_preferred_output"])
        return make_record(
            prompt["messages"],
            "preference",
            file,
            line,
            tools=prompt["tools"],
            chosen=chosen,
            rejected=rejected,
        )
    except RowError as exc:
        found.append(("bad_row", str(exc)))
        return None


def _data_stage_problems(
    records: list[Record], min_words: int, threshold: float, seed: int
) -> list[Problem]:
    findings = data_checks.check_records(
        records, min_words=min_words, near_duplicate_threshold=threshold, seed=seed
    )
    problems = []
    for finding in findings:
        detail = finding.detail
        if finding.other:
            detail += f" (first at line {finding.other.rsplit(':', 1)[-1]})"
        severity: Severity = "error" if finding.check in data_checks.REJECTING else "warning"
        line = records[finding.index]["source"]["line"]
        problems.append(Problem(finding.check, line, detail, severity))
    return problems


def _over_limit(
    valid: list[tuple[int, dict[str, Any]]], counts: list[int], limit: int | None
) -> list[Problem]:
    if limit is None:
        return []
    return [
        Problem(
            "over_token_limit",
            line,
            f"{count} tokens > {limit}: OpenAI truncates it to the limit",
            "warning",
        )
        for (line, _), count in zip(valid, counts, strict=True)
        if count > limit
    ]


def _notes(info: tokens.ModelInfo, counter: tokens.Counter) -> list[str]:
    notes = []
    if not info.known:
        notes.append(
            f"model {info.name} is not in tunewright's table of limits "
            f"({', '.join(tokens.known_models())}): no over-limit check, billing uncapped"
        )
    if not counter.exact:
        notes.append(
            f"token counts are estimates with {counter.name}: {info.name} uses "
            f"{info.encoding}, which is not available offline"
        )
    return notes
