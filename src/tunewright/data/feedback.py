"""Served traffic -> training data: a `tunewright serve` request log (with `serve.log_content`)
and the judgements made on its exchanges become SFT rows and preference pairs.

The feedback file is JSONL, one judgement a line, appended as people judge (the UI does):

    {"request_id": str, "rating": "good" | "bad", "correction": str | null, "time": ISO 8601}

The last line for a request wins. A good exchange becomes an OpenAI `messages` row (the prompt's
messages and the served answer); a corrected one (a correction, whatever the rating) a preference
pair in TRL's conversational shape, the correction chosen and the served answer rejected; a bad
one without a correction teaches nothing and is only counted. A completions request's text prompt
becomes one user turn, as `prompt`/`completion` rows are read.

Every log line ends in exactly one outcome (OUTCOMES), so nothing is dropped unseen. The rows then
go through the data stage's own checks (`analyze`, what `tunewright data validate` runs): rows
they reject go to `rejected.jsonl` with the reason and the log line they came from, and the files
written are checked once more, which is the report shown.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunewright.config import Config, load_config
from tunewright.data.export import to_openai, to_trl
from tunewright.data.prepare import analyze
from tunewright.data.records import make_record
from tunewright.errors import InputFileError
from tunewright.files import append_jsonl, atomic_write_json, write_jsonl

RATINGS = ("good", "bad")
SFT, PREFERENCE, REJECTED, REPORT = (
    "sft.jsonl",
    "preference.jsonl",
    "rejected.jsonl",
    "import_report.json",
)
# What became of each log line, in the order they are printed.
OUTCOMES = {
    "good": "good: SFT row",
    "corrected": "corrected: preference pair",
    "bad_no_correction": "bad, no correction: not usable",
    "not_judged": "not judged",
    "no_content": "no content (logged without serve.log_content)",
    "failed": "status not 200",
    "no_answer": "no answer logged (the stream ended early)",
    "several_answers": "several answers (n > 1 or a list of prompts): not imported",
    "unreadable": "unreadable line",
}
FEEDBACK_SHAPE = (
    'Each line: {"request_id": "...", "rating": "good" | "bad", "correction": text or null, '
    '"time": ISO 8601}.'
)
_SHOWN = 10  # locations kept per outcome and per problem list


@dataclass(frozen=True)
class Judgement:
    request_id: str
    rating: str  # one of RATINGS
    correction: str | None
    time: str
    line: int  # 1-based line of the feedback file; 0 before it is written


@dataclass(frozen=True)
class Exchange:
    """A logged request with its prompt messages and its one served answer."""

    request_id: str
    line: int
    messages: list[dict[str, Any]]
    answer: str


def feedback_path(log: Path) -> Path:
    """The default feedback file beside a log: requests.jsonl -> requests.feedback.jsonl."""
    name = log.name[: -len(".jsonl")] if log.name.endswith(".jsonl") else log.name
    return log.with_name(name + ".feedback.jsonl")


def default_out_dir(log: Path) -> Path:
    return log.with_name(f"{log.stem}-import")


# ---------------------------------------------------------------------------------------------
# The import


def import_logs(
    log: Path,
    feedback: Path | None = None,
    out_dir: Path | None = None,
    config: Config | None = None,
) -> dict[str, Any]:
    """Write `sft.jsonl`, `preference.jsonl`, `rejected.jsonl` and `import_report.json` to
    `out_dir` (default: `<log stem>-import/` beside the log) and return the report. `config`
    gives the checks their settings and tokenizer (default: the default config)."""
    if not log.is_file():
        raise InputFileError(
            f"request log not found: {log}",
            hint="`tunewright serve` writes <run>/serve/requests.jsonl.",
        )
    feedback = feedback or feedback_path(log)
    out_dir = out_dir or default_out_dir(log)
    if not feedback.is_file():
        # A log that cannot give any rows is the first thing to fix.
        _refuse_contentless(log, Counter(outcome for _, outcome, _, _ in _log_outcomes(log)))
        raise InputFileError(
            f"feedback file not found: {feedback}",
            hint="Mark exchanges good or bad in `tunewright ui`, or write the file: "
            + FEEDBACK_SHAPE,
        )
    judgements = _read_judgements(feedback)
    latest = {j.request_id: j for j in judgements}
    traffic = _sort_log(log, latest)
    _refuse_contentless(log, traffic.outcomes)
    config = config or load_config(None)
    tokenizer = _tokenizer(config)
    rejected: list[dict[str, Any]] = []
    checks = {
        name: _write_checked(config, tokenizer, out_dir / name, rows, rejected)
        for name, rows in ((SFT, traffic.sft), (PREFERENCE, traffic.pairs))
    }
    unknown = sorted(latest.keys() - traffic.seen)
    report = {
        "log": str(log),
        "feedback": str(feedback),
        "out_dir": str(out_dir),
        "sft_rows": _rows(checks[SFT]),
        "preference_pairs": _rows(checks[PREFERENCE]),
        "rejected": len(rejected),
        "outcomes": traffic.outcomes,
        "examples": {k: v for k, v in traffic.examples.items() if v},
        "judgements": {
            "lines": len(judgements),
            "overridden": len(judgements) - len(latest),
            "unknown_request": len(unknown),
            "unknown_examples": unknown[:_SHOWN],
        },
        "checks": checks,
    }
    write_jsonl(out_dir / REJECTED, rejected)
    atomic_write_json(out_dir / REPORT, report)
    return report


@dataclass
class _Sorted:
    """The log's lines by outcome, and the rows the judged ones make: (row, its log line)."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in OUTCOMES})
    seen: set[str | None] = field(default_factory=set)  # request ids in the log
    sft: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    pairs: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def _sort_log(log: Path, latest: dict[str, Judgement]) -> _Sorted:
    """Streams the log (it may be large), keeping only the rows judgements make."""
    found = _Sorted()
    for line, outcome, request_id, exchange in _log_outcomes(log):
        found.seen.add(request_id)
        if exchange is not None:
            outcome, row = _judged(exchange, latest.get(exchange.request_id), log)
            if row is not None:
                target = found.sft if outcome == "good" else found.pairs
                target.append((row, f"{log}:{line} ({exchange.request_id})"))
        found.outcomes[outcome] += 1
        if len(found.examples[outcome]) < _SHOWN:
            found.examples[outcome].append(f"{log}:{line}")
    return found


def _rows(checked: dict[str, Any] | None) -> int:
    return checked["rows"]["total"] if checked else 0


def _judged(
    exchange: Exchange, judgement: Judgement | None, log: Path
) -> tuple[str, dict[str, Any] | None]:
    """(outcome, the row it makes or None)."""
    if judgement is None:
        return "not_judged", None
    if judgement.correction is not None:
        record = make_record(
            exchange.messages,
            "preference",
            str(log),
            exchange.line,
            chosen=judgement.correction,
            rejected=exchange.answer,
        )
        return "corrected", to_trl(record)
    if judgement.rating == "bad":
        return "bad_no_correction", None
    answer = {"role": "assistant", "content": exchange.answer}
    record = make_record([*exchange.messages, answer], "chat", str(log), exchange.line)
    return "good", to_openai(record)


def _refuse_contentless(log: Path, outcomes: Counter[str] | dict[str, int]) -> None:
    """A log with no exchange in it is a wrong file or a server run without content logging:
    say so rather than write empty files."""
    lines = sum(outcomes.values())
    if not lines:
        raise InputFileError(f"{log}: the request log holds no requests")
    if outcomes["no_content"] + outcomes["unreadable"] < lines:
        return
    if outcomes["no_content"]:
        raise InputFileError(
            f"{log}: none of its {outcomes['no_content']} requests was logged with its "
            "content (prompt and answer)",
            hint="Serve with serve.log_content: true; requests logged from then on can be "
            "imported.",
        )
    raise InputFileError(
        f"{log}: none of its {lines} lines is a request-log record",
        hint="Give the `requests.jsonl` that `tunewright serve` writes.",
    )


# ---------------------------------------------------------------------------------------------
# The request log


def _log_outcomes(log: Path) -> Iterator[tuple[int, str, str | None, Exchange | None]]:
    """(line, outcome, request id, exchange) per non-blank log line; the exchange only when it
    has one prompt and one answer, its outcome then decided by the judgement."""
    with open(log, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                yield number, "unreadable", None, None
                continue
            if not isinstance(record, dict) or not isinstance(record.get("request_id"), str):
                yield number, "unreadable", None, None
            elif "prompt" not in record:
                yield number, "no_content", record["request_id"], None
            elif record.get("status") != 200:
                yield number, "failed", record["request_id"], None
            else:
                yield number, *_exchange(record, number)


def _exchange(record: dict[str, Any], line: int) -> tuple[str, str, Exchange | None]:
    """What serving stored (serving/app.py): chat requests' messages as the chat template takes
    them, completions' `prompt` text (or a list of texts); the answer text, or a list of them
    for several choices."""
    request_id, prompt, output = record["request_id"], record["prompt"], record.get("output")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return "several_answers", request_id, None
    if isinstance(output, list):
        return "several_answers", request_id, None
    if not isinstance(output, str):
        return "no_answer", request_id, None
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        messages = prompt  # anything odd in them is the data checks' to reject
    else:
        return "unreadable", request_id, None
    return "exchange", request_id, Exchange(request_id, line, messages, output)


# ---------------------------------------------------------------------------------------------
# Feedback


def append_feedback(
    path: Path, request_id: str, rating: str, correction: str | None = None
) -> Judgement:
    """Append one judgement as one line (a failed write is cut back off, so a reader never
    sees half a line). A blank correction is no correction."""
    if rating not in RATINGS:
        raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
    correction = correction if correction and correction.strip() else None
    time = datetime.now(timezone.utc).isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"request_id": request_id, "rating": rating, "correction": correction, "time": time}
    append_jsonl(path, [line])
    return Judgement(request_id, rating, correction, time, 0)


def read_feedback(path: Path) -> dict[str, Judgement]:
    """The judgement in force per request id (the file's last line for it); none when the file
    does not exist yet. A malformed line raises InputFileError naming file and line."""
    if not path.is_file():
        return {}
    return {j.request_id: j for j in _read_judgements(path)}


def _read_judgements(path: Path) -> list[Judgement]:
    """Every judgement in file order; every malformed line reported at once."""
    judgements, problems = [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                judgements.append(_judgement(text, number))
            except ValueError as exc:
                problems.append(f"{path}:{number}: {exc}")
    if problems:
        more = len(problems) - _SHOWN
        listed = "\n".join(f"  - {p}" for p in problems[:_SHOWN])
        raise InputFileError(
            f"{path}: {len(problems)} malformed feedback line{'s' if len(problems) > 1 else ''}"
            f"\n{listed}" + (f"\n  ... and {more} more" if more > 0 else ""),
            hint=FEEDBACK_SHAPE,
        )
    return judgements


def _judgement(text: str, line: int) -> Judgement:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    request_id, rating = row.get("request_id"), row.get("rating")
    correction, time = row.get("correction"), row.get("time")
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("request_id: must be the request's id (text)")
    if rating not in RATINGS:
        raise ValueError(f"rating: must be 'good' or 'bad', not {rating!r}")
    if correction is not None and not isinstance(correction, str):
        raise ValueError("correction: must be text or null")
    if not isinstance(time, str):
        raise ValueError("time: must be an ISO 8601 time")
    try:
        datetime.fromisoformat(time)
    except ValueError:
        raise ValueError(f"time: {time!r} is not an ISO 8601 time") from None
    correction = correction if correction and correction.strip() else None
    return Judgement(request_id, rating, correction, time, line)


# ---------------------------------------------------------------------------------------------
# The checks


def _write_checked(
    config: Config,
    tokenizer: Any,
    target: Path,
    rows: list[tuple[dict[str, Any], str]],
    rejected: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """Write the rows the data checks keep to `target` and return the checks' report on that
    file (None when there are no rows); add the others to `rejected`, located in the log."""
    if not rows:
        write_jsonl(target, [])
        return None
    with tempfile.TemporaryDirectory(prefix="tunewright-import-") as folder:
        candidate = Path(folder).resolve() / target.name
        write_jsonl(candidate, [row for row, _ in rows])
        refusals = analyze(_checking(config, candidate), tokenizer).rejected
    # The checks name the candidate's lines; the user needs the log's.
    line_in = re.compile(re.escape(str(candidate)) + r":(\d+)")

    def origin(found: re.Match[str]) -> str:
        return rows[int(found.group(1)) - 1][1]

    refused = set()
    for entry in refusals:
        index = int(entry["source"].rsplit(":", 1)[1]) - 1
        refused.add(index)
        rejected.append(
            {
                "source": rows[index][1],
                "file": target.name,
                "check": entry["check"],
                "reason": line_in.sub(origin, entry["reason"]),
                "row": rows[index][0],
            }
        )
    write_jsonl(target, [row for i, (row, _) in enumerate(rows) if i not in refused])
    return analyze(_checking(config, target), tokenizer).report


def _checking(config: Config, path: Path) -> Config:
    """`config` with `path` as its only data: what `tunewright data validate PATH` checks."""
    checking = config.model_copy(deep=True)
    checking.data.train = [str(path.resolve())]
    checking.data.eval = []
    return checking


def _tokenizer(config: Config) -> Any:
    from tunewright.models import load_base_tokenizer

    return load_base_tokenizer(config)[0]
