"""Data-quality checks over canonical records: what `data validate` reports and `data prepare`
rejects.

Every finding names the source `file:line` of the record it is about. Findings whose check is in
REJECTING make a record unusable; the others are warnings. Duplicates and train/eval leaks are
found by `tunewright.data.dedup` over each record's full text (prompt and answer). Preference
pairs and binary feedback are compared with train by their prompt instead, and grouped by it for
the split: several pairs or judged answers per prompt are normal, and an eval example whose
prompt was trained on is a leak.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewright.data import placeholders
from tunewright.data.dedup import DuplicateIndex, Links, cross_duplicates, shared_ngrams
from tunewright.data.load import JSONLimitError, parse_json
from tunewright.data.records import (
    PROMPTED,
    ROLES,
    Record,
    answer_text,
    full_text,
    location,
    prompt_text,
)

if TYPE_CHECKING:
    from tunewright.data.boilerplate import AnswerNgrams


@dataclass
class Finding:
    check: str  # one of CHECKS, or "leak" from find_leaks
    index: int  # position of the record in the list given
    location: str  # records.location(record), "file:line"
    detail: str  # short human text, e.g. "answer has 2 words (< 5)"
    other: str | None = None  # the other location, for duplicates and leaks
    values: tuple[str, ...] = ()  # what was found, for counts per value (placeholders)


# In report order. `leak` findings come from find_leaks and are gated separately.
CHECKS = (
    "empty_output",
    "missing_prompt",
    "identical_pair",
    "bad_conversation",
    "invalid_tool_call",
    "encoding",
    "exact_duplicate",
    "near_duplicate",
    "too_short",
    "placeholder",
)
REJECTING = frozenset(
    {
        "empty_output",
        "missing_prompt",
        "identical_pair",
        "exact_duplicate",
        "bad_conversation",
        "invalid_tool_call",
        "encoding",
    }
)
WARNINGS = frozenset(CHECKS) - REJECTING
LEAK = "leak"

# (minimum, recommended) examples per task, from the seed's guidance.
MINIMUM_COUNTS = {
    "classification": (100, 1000),
    "instruction": (100, 500),
    "generation": (100, 500),
    "chat": (500, 2000),
    "code": (200, 1000),
    "summarization": (100, 500),
}


def check_records(
    records: list[Record],
    *,
    min_words: int = 5,
    near_duplicate_threshold: float = 0.85,
    seed: int = 0,
    duplicates: DuplicateIndex | None = None,
) -> list[Finding]:
    """Every problem in `records`, ordered by record then by CHECKS order.

    Duplicates are reported on the later record, with `other` naming the first one seen.
    `duplicates`, from duplicate_index() over these records or more, saves building one here."""
    findings: list[Finding] = []
    orders: dict[tuple[Any, ...], bool] = {}
    for index, record in enumerate(records):
        plain = _plain_findings(index, record, min_words, orders)
        findings.extend(_record_findings(index, record, min_words) if plain is None else plain)
    links = _links(records, near_duplicate_threshold, seed, duplicates)
    for index, first in enumerate(links.firsts):
        if first != index:
            where, other = location(records[index]), location(records[first])
            findings.append(Finding("exact_duplicate", index, where, "exact duplicate", other))
    earliest: dict[int, tuple[int, float]] = {}
    for i, j, jaccard in links.near:  # i < j; keep the first record that j resembles
        if j not in earliest or i < earliest[j][0]:
            earliest[j] = (i, jaccard)
    for j, (i, jaccard) in earliest.items():
        detail = f"near-duplicate, similarity {jaccard:.2f}"
        findings.append(
            Finding("near_duplicate", j, location(records[j]), detail, location(records[i]))
        )
    rank = {check: n for n, check in enumerate(CHECKS)}
    findings.sort(key=lambda f: (f.index, rank[f.check]))
    return findings


def duplicate_index(records: list[Record], seed: int = 0) -> DuplicateIndex:
    """MinHash signatures of the records' texts, to share between check_records and
    near_duplicate_groups: building them is most of the cost of each (~1.7 s per 100k rows).

    The index also serves any sub-list of `records`, such as those kept after rejection."""
    return DuplicateIndex(_full_texts(records), seed, owners=records)


def near_duplicate_groups(
    records: list[Record],
    threshold: float = 0.85,
    seed: int = 0,
    *,
    duplicates: DuplicateIndex | None = None,
) -> list[int]:
    """A group id per record: records linked by exact or near duplication share one.

    The id is the smallest index in the group, so it is stable for a given input order. The
    splitter keeps each group on one side so duplicates cannot leak from train into eval.
    `duplicates`, from duplicate_index() over these records or more, saves building one here;
    the groups are the same either way."""
    return _links(records, threshold, seed, duplicates).groups()


def find_leaks(
    train: list[Record],
    eval: list[Record],
    *,
    near_duplicate_threshold: float = 0.85,
    ngram: int = 13,
    boilerplate: np.ndarray | None = None,
) -> list[Finding]:
    """Eval records that also appear in train: exact copies, near-duplicates, or answers that
    share a run of `ngram` words with a train answer, other than `boilerplate` (sorted hashes
    from boilerplate.AnswerNgrams: runs in many answers). Pairs and feedback leak by their prompt:
    a train example with the same prompt (or nearly) has shown the model that question. One
    finding per leaking eval record, the strongest kind first; `location` is the eval record and
    `other` the train record."""
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, got {ngram}")
    copies = cross_duplicates(_leak_texts(train), _leak_texts(eval), near_duplicate_threshold)
    found: dict[int, tuple[int, str]] = {}
    for j, (i, jaccard) in copies.items():  # jaccard is None for an exact copy
        what = "prompt" if eval[j].get("task") in PROMPTED else "example"
        kind = "exact duplicate" if jaccard is None else "near-duplicate"
        similarity = "" if jaccard is None else f", similarity {jaccard:.2f}"
        found[j] = (i, f"{kind} of a train {what}{similarity}")
    answers = shared_ngrams(_answer_texts(train), _answer_texts(eval), ngram, boilerplate)
    for j, (i, words) in answers.items():
        found.setdefault(j, (i, f'answer shares a {ngram}-gram with a train answer: "{words}"'))
    return [
        Finding(LEAK, j, location(eval[j]), detail, location(train[i]))
        for j, (i, detail) in sorted(found.items())
    ]


def split_leaks(
    records: list[Record],
    train: list[int],
    eval: list[int],
    *,
    duplicates: DuplicateIndex,
    ngrams: AnswerNgrams,
    near_duplicate_threshold: float = 0.85,
) -> set[int] | None:
    """The positions in `eval` of the records find_leaks would report for this split of
    `records` (train and eval: indices into it), from the duplicate index and answer n-grams
    already built over `records`, so no text is read again. None when they cannot answer:
    records not all indexed, or pairs and feedback, which leak by their prompt."""
    positions = duplicates.positions(records)
    if positions is None or any(r.get("task") in PROMPTED for r in records):
        return None
    if len(ngrams.shared_owners) and int(ngrams.shared_owners.max()) >= len(records):
        return None
    copies = duplicates.cross(
        [positions[i] for i in train], [positions[i] for i in eval], near_duplicate_threshold
    )
    sides = np.full(len(records), -1, np.int8)
    sides[np.asarray(train, np.int64)] = 1
    sides[np.asarray(eval, np.int64)] = 0
    at = {record: k for k, record in enumerate(eval)}
    return set(copies) | {at[i] for i in ngrams.leaking(sides).tolist()}


def prompt_groups(records: list[Record], threshold: float = 0.85, seed: int = 0) -> list[int]:
    """A group id per record: pairs and feedback whose prompts are equal or near-duplicates
    share one (the smallest index in the group); every other record is alone. The splitter
    joins these with the duplicate groups, so one prompt's examples land on one side."""
    if not any(r.get("task") in PROMPTED for r in records):
        return list(range(len(records)))
    # Other records get no text: empty texts are nobody's duplicate.
    texts = (
        prompt_text(r) if r.get("task") in PROMPTED and not _structure_problem(r) else ""
        for r in records
    )
    return DuplicateIndex(texts, seed).links(threshold).groups()


def label_distribution(records: list[Record]) -> dict[str, Any]:
    """Label counts (most common first), max/min count ratio and the majority label's share.

    Ratio and share are None when no record has a label."""
    counts: dict[str, int] = {}
    for record in records:
        label = record.get("label")
        if label is not None:
            counts[str(label)] = counts.get(str(label), 0) + 1
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    if not ordered:
        return {"counts": {}, "imbalance_ratio": None, "majority_share": None}
    largest, smallest = max(ordered.values()), min(ordered.values())
    return {
        "counts": ordered,
        "imbalance_ratio": largest / smallest,
        "majority_share": largest / sum(ordered.values()),
    }


def minimum_count_warnings(task: str, count: int) -> list[str]:
    """A warning when `count` examples is below the minimum or recommended size for `task`."""
    if task not in MINIMUM_COUNTS:
        return []
    minimum, recommended = MINIMUM_COUNTS[task]
    examples = f"{task}: {count} example{'' if count == 1 else 's'}"
    if count < minimum:
        return [f"{examples}, below the minimum of {minimum} ({recommended}+ recommended)"]
    if count < recommended:
        return [f"{examples}, below the recommended {recommended}"]
    return []


# ---------------------------------------------------------------------------------------------
# Per-record checks


def _record_findings(index: int, record: Record, min_words: int) -> list[Finding]:
    missing = _missing_prompt(record)
    if missing:  # a pair or judged answer with no question: nothing to learn from it
        return [Finding("missing_prompt", index, location(record), missing)]
    structure = _structure_problem(record)
    if structure:  # nothing else can be read safely from this record
        return [Finding("bad_conversation", index, location(record), structure)]
    messages = record["messages"]
    details = {
        "empty_output": _empty_output(record, messages),
        "identical_pair": _identical_pair(record),
        "bad_conversation": "; ".join(_conversation_problems(record, messages)[:3]) or None,
        "invalid_tool_call": "; ".join(_tool_call_problems(messages)[:3]) or None,
        "encoding": _encoding_problem(_labelled_texts(record, messages)),
        "too_short": _too_short(record, min_words),
    }
    findings = [
        Finding(check, index, location(record), detail)
        for check, detail in details.items()
        if detail
    ]
    found = placeholders.record_placeholders(record)
    if found:
        where, detail = location(record), placeholders.describe(found)
        findings.append(Finding("placeholder", index, where, detail, values=tuple(found)))
    return findings


_PLAIN_KEYS = frozenset({"role", "content", "weight"})


def _plain_findings(
    index: int, record: Record, min_words: int, orders: dict[tuple[Any, ...], bool]
) -> list[Finding] | None:
    """_record_findings for the common record, quicker: text messages with a role and content
    only, not a pair or feedback. None for any other record, or when this one has a problem,
    so that _record_findings names it. `orders` caches whether a task's role sequence is in
    order. A million rows spent ~25 s in _record_findings; most are this kind, and clean."""
    task = record.get("task")
    messages = record.get("messages")
    if task in PROMPTED or not isinstance(messages, list) or not messages:
        return None
    contents = []
    for message in messages:
        if type(message) is not dict or not message.keys() <= _PLAIN_KEYS:
            return None
        content = message.get("content")
        if type(content) is not str or type(message.get("role")) is not str:
            return None
        contents.append(content)
    key = (task, *(m["role"] for m in messages))
    if key not in orders:
        probe = [{"role": role, "content": "x"} for role in key[1:]]
        orders[key] = not _conversation_problems(record, probe)
    if not orders[key]:
        return None
    answers = [c for c, m in zip(contents, messages, strict=True) if m["role"] == "assistant"]
    if not any(a.strip() for a in answers):
        return None  # an empty answer: _record_findings names the turns
    for content, message in zip(contents, messages, strict=True):
        if message["role"] == "user" and not content.strip():
            return None
        if not content.isascii() or (not content.isprintable() and _CONTROL.search(content)):
            return None  # the encoding check names what it finds
    answer = "\n".join(answers)
    findings = []
    words = len(answer.split())
    if task != "classification" and 0 < words < min_words:
        detail = f"answer has {words} word{'' if words == 1 else 's'} (< {min_words})"
        findings.append(Finding("too_short", index, location(record), detail))
    found = placeholders.find_placeholders(answer) if task != "code" else []
    if found:
        where, detail = location(record), placeholders.describe(found)
        findings.append(Finding("placeholder", index, where, detail, values=tuple(found)))
    return findings


def _structure_problem(record: Record) -> str | None:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no messages"
    for k, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            return f"message {k} is not an object"
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            return f"message {k}: content is not text"
    return None


def _missing_prompt(record: Record) -> str | None:
    """Pairs and feedback need a user turn with text before their answers."""
    if record.get("task") not in PROMPTED:
        return None
    messages = record.get("messages")
    if not isinstance(messages, list):
        return None  # reported as bad_conversation
    prompt = messages if record["task"] == "preference" else messages[:-1]
    for message in prompt:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                return None
    return "no prompt: no user turn with text before the answers"


def _empty_output(record: Record, messages: list[dict[str, Any]]) -> str | None:
    if record.get("task") == "preference":
        empty = [side for side in ("chosen", "rejected") if not str(record.get(side) or "").strip()]
        if not empty:
            return None
        return " and ".join(empty) + (
            " answers are empty" if len(empty) == 2 else " answer is empty"
        )
    if record.get("task") == "feedback":  # the judged answer is the last turn
        return None if (messages[-1].get("content") or "").strip() else "judged answer is empty"
    turns = [m for m in messages if m.get("role") == "assistant"]
    # No assistant turn at all is reported once, as bad_conversation.
    if not turns or any(m.get("tool_calls") or (m.get("content") or "").strip() for m in turns):
        return None
    # Name the turns, numbered as the other conversation checks number them.
    empty = [f"message {k}" for k, m in enumerate(messages, 1) if m.get("role") == "assistant"]
    return f"assistant answer is empty ({', '.join(empty[:3])})"


def _identical_pair(record: Record) -> str | None:
    """A pair whose answers are the same (up to whitespace) teaches no preference."""
    if record.get("task") != "preference":
        return None
    chosen, rejected = (" ".join(str(record.get(s) or "").split()) for s in ("chosen", "rejected"))
    return "chosen and rejected answers are identical" if chosen and chosen == rejected else None


def _too_short(record: Record, min_words: int) -> str | None:
    # Classification answers are labels, short by nature.
    if record.get("task") == "classification":
        return None
    words = len(answer_text(record).split())
    if 0 < words < min_words:
        return f"answer has {words} word{'' if words == 1 else 's'} (< {min_words})"
    return None


def _conversation_problems(record: Record, messages: list[dict[str, Any]]) -> list[str]:
    """Role-order problems: [system] user assistant (user assistant)*, where an assistant turn
    with tool_calls may be followed by tool results and then an assistant turn."""
    task = record.get("task")
    problems = []
    previous: str | None = None
    called = False  # whether the last assistant turn made tool calls
    for k, message in enumerate(messages, 1):
        role = message.get("role")
        if role not in ROLES:
            problems.append(f"message {k} has unknown role {role!r}")
            continue
        allowed = _next_roles(previous, called, task)
        if role not in allowed:
            after = f"after {previous}" if previous else "at the start"
            problems.append(f"message {k}: {role} {after} (expected {' or '.join(allowed)})")
        if role == "user" and not (message.get("content") or "").strip():
            problems.append(f"message {k}: empty user turn")
        if role == "assistant":
            called = bool(message.get("tool_calls"))
        previous = role
    has_answer = any(m.get("role") == "assistant" for m in messages)
    if task != "preference" and not has_answer:  # preference answers live in `chosen`
        problems.append("no assistant turn")
    if task == "preference" and previous not in ("user", "tool"):
        problems.append(f"the prompt's last turn is {previous}, not user (the answers follow it)")
    return problems


def _next_roles(previous: str | None, called: bool, task: Any) -> tuple[str, ...]:
    # Plain text records are one assistant message with no prompt.
    opening = ("assistant",) if task == "text" else ()
    if previous is None:
        return ("system", "user", *opening)
    if previous == "system":
        return ("user", *opening)
    if previous == "user":
        return ("assistant",)
    if previous == "assistant":
        return ("user", "tool") if called else ("user",)
    return ("tool", "assistant")  # after tool results, more results or the assistant's reply


def _tool_call_problems(messages: list[dict[str, Any]]) -> list[str]:
    problems = []
    for k, message in enumerate(messages, 1):
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if not calls:
            continue
        if not isinstance(calls, list):
            problems.append(f"message {k}: tool_calls is not a list")
            continue
        for c, call in enumerate(calls, 1):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not function.get("name"):
                problems.append(f"message {k}, tool call {c}: missing function name")
                continue
            name, arguments = function["name"], function.get("arguments")
            if not isinstance(arguments, str):
                continue  # already parsed (a dict) or absent: nothing to decode
            try:
                parse_json(arguments)
            except json.JSONDecodeError as exc:
                problems.append(
                    f"message {k}, tool call {c} ({name}): arguments are not valid JSON: "
                    f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
                )
            except JSONLimitError as exc:
                problems.append(f"message {k}, tool call {c} ({name}): arguments: {exc}")
    return problems


# ---------------------------------------------------------------------------------------------
# Encoding


# C0 and C1 control characters except tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _byte_readings() -> dict[str, int]:
    """Each character a UTF-8 byte >= 0x80 turns into when misread as cp1252 or latin-1."""
    readings = {chr(byte): byte for byte in range(0x80, 0x100)}  # latin-1
    for byte in range(0x80, 0x100):
        # Five bytes are undefined in cp1252; the latin-1 reading covers them.
        with contextlib.suppress(UnicodeDecodeError):
            readings[bytes([byte]).decode("cp1252")] = byte
    return readings


_BYTE_OF = _byte_readings()
_CONT = "[" + "".join(re.escape(c) for c, b in _BYTE_OF.items() if 0x80 <= b < 0xC0) + "]"
# A UTF-8 lead byte read as one character, followed by its continuation bytes read the same way.
_MOJIBAKE = re.compile(
    f"[\u00c2-\u00df]{_CONT}|[\u00e0-\u00ef]{_CONT}{{2}}|[\u00f0-\u00f4]{_CONT}{{3}}"
)


def _labelled_texts(record: Record, messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    texts = [
        (f"message {k} ({m.get('role')})", m.get("content") or "")
        for k, m in enumerate(messages, 1)
    ]
    for key in ("chosen", "rejected"):
        if isinstance(record.get(key), str):
            texts.append((key, record[key]))
    return texts


def _encoding_problem(texts: Iterable[tuple[str, str]]) -> str | None:
    for where, text in texts:
        control = _CONTROL.search(text)
        if control:
            code = ord(control.group())
            return f"{where}: control character U+{code:04X} at char {control.start()}"
        if text.isascii():  # the checks below need non-ASCII characters
            continue
        if "\ufffd" in text:
            return f"{where}: U+FFFD replacement character at char {text.index(chr(0xFFFD))}"
        for match in _MOJIBAKE.finditer(text):
            fixed = _undo_mojibake(match.group())
            if fixed is not None:
                return f'{where}: mojibake "{match.group()}" (UTF-8 read as cp1252: "{fixed}")'
    return None


def _undo_mojibake(text: str) -> str | None:
    """The UTF-8 text that `text` is a misreading of, or None when it is not one."""
    try:
        return bytes(_BYTE_OF[c] for c in text).decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------------------------
# Texts compared for duplicates and leaks


def _links(
    records: list[Record], threshold: float, seed: int, duplicates: DuplicateIndex | None
) -> Links:
    if duplicates is None:
        return DuplicateIndex(_full_texts(records), seed).links(threshold)
    if duplicates.seed != seed:  # the links would silently come from other MinHash functions
        raise ValueError(f"duplicates were indexed with seed {duplicates.seed}, not {seed}")
    positions = duplicates.positions(records)
    if positions is not None:
        return duplicates.links(threshold, positions=positions)
    return duplicates.links(threshold, _full_texts(records))


def _full_texts(records: list[Record]) -> Iterator[str]:
    # Unreadable records are already bad_conversation; calling them duplicates is noise. One at a
    # time: dedup keeps only the normalised copies (~30 MB per 100k rows less at the peak).
    return ("" if _structure_problem(r) else full_text(r) for r in records)


def _leak_texts(records: list[Record]) -> list[str]:
    return [_leak_text(r) for r in records]


def _leak_text(record: Record) -> str:
    """What leaks: the prompt of pairs and feedback, the whole example otherwise."""
    if _structure_problem(record):
        return ""
    return prompt_text(record) if record.get("task") in PROMPTED else full_text(record)


def _answer_texts(records: list[Record]) -> list[str]:
    return ["" if _structure_problem(r) else answer_text(r) for r in records]
