"""Data-quality checks over canonical records: what `data validate` reports and `data prepare`
rejects.

Every finding names the source `file:line` of the record it is about. Findings whose check is in
REJECTING make a record unusable; the others are warnings. Duplicates and train/eval leaks are
found with MinHash and LSH banding over word 5-shingles; all hashing is blake2b or seeded numpy
arithmetic, so results never depend on PYTHONHASHSEED.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewright.data.records import ROLES, Record, answer_text, full_text, location


@dataclass
class Finding:
    check: str  # one of CHECKS, or "leak" from find_leaks
    index: int  # position of the record in the list given
    location: str  # records.location(record), "file:line"
    detail: str  # short human text, e.g. "answer has 2 words (< 5)"
    other: str | None = None  # the other location, for duplicates and leaks


# In report order. `leak` findings come from find_leaks and are gated separately.
CHECKS = (
    "empty_output",
    "bad_conversation",
    "invalid_tool_call",
    "encoding",
    "exact_duplicate",
    "near_duplicate",
    "too_short",
)
REJECTING = frozenset(
    {"empty_output", "exact_duplicate", "bad_conversation", "invalid_tool_call", "encoding"}
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
) -> list[Finding]:
    """Every problem in `records`, ordered by record then by CHECKS order.

    Duplicates are reported on the later record, with `other` naming the first one seen."""
    findings: list[Finding] = []
    for index, record in enumerate(records):
        findings.extend(_record_findings(index, record, min_words))
    firsts, near = _duplicate_links(records, near_duplicate_threshold, seed)
    for index, first in enumerate(firsts):
        if first != index:
            where, other = location(records[index]), location(records[first])
            findings.append(Finding("exact_duplicate", index, where, "exact duplicate", other))
    earliest: dict[int, tuple[int, float]] = {}
    for i, j, jaccard in near:  # i < j; keep the first record that j resembles
        if j not in earliest or i < earliest[j][0]:
            earliest[j] = (i, jaccard)
    for j, (i, jaccard) in earliest.items():
        detail = f"near-duplicate, Jaccard {jaccard:.2f}"
        findings.append(
            Finding("near_duplicate", j, location(records[j]), detail, location(records[i]))
        )
    rank = {check: n for n, check in enumerate(CHECKS)}
    findings.sort(key=lambda f: (f.index, rank[f.check]))
    return findings


def near_duplicate_groups(
    records: list[Record], threshold: float = 0.85, seed: int = 0
) -> list[int]:
    """A group id per record: records linked by exact or near duplication share one.

    The id is the smallest index in the group, so it is stable for a given input order. The
    splitter keeps each group on one side so duplicates cannot leak from train into eval."""
    firsts, near = _duplicate_links(records, threshold, seed)
    groups = _UnionFind(len(records))
    for i, first in enumerate(firsts):
        groups.union(first, i)
    for i, j, _ in near:
        groups.union(i, j)
    return [groups.root(i) for i in range(len(records))]


def find_leaks(
    train: list[Record],
    eval: list[Record],
    *,
    near_duplicate_threshold: float = 0.85,
    ngram: int = 13,
) -> list[Finding]:
    """Eval records that also appear in train: exact copies, near-duplicates, or answers that
    share a run of `ngram` words with a train answer. One finding per leaking eval record, the
    strongest kind first; `location` is the eval record and `other` the train record."""
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, got {ngram}")
    train_texts = [_normalise(_safe_full_text(r)) for r in train]
    eval_texts = [_normalise(_safe_full_text(r)) for r in eval]
    found: dict[int, tuple[int, str]] = {}
    for j, i in _exact_matches(train_texts, eval_texts).items():
        found[j] = (i, "exact duplicate of a train example")
    for j, (i, jaccard) in _near_matches(train_texts, eval_texts, near_duplicate_threshold).items():
        found.setdefault(j, (i, f"near-duplicate of a train example, Jaccard {jaccard:.2f}"))
    train_answers = [_safe_answer_text(r) for r in train]
    eval_answers = [_safe_answer_text(r) for r in eval]
    for j, (i, words) in _shared_ngrams(train_answers, eval_answers, ngram).items():
        found.setdefault(j, (i, f'answer shares a {ngram}-gram with a train answer: "{words}"'))
    return [
        Finding(LEAK, j, location(eval[j]), detail, location(train[i]))
        for j, (i, detail) in sorted(found.items())
    ]


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
    structure = _structure_problem(record)
    if structure:  # nothing else can be read safely from this record
        return [Finding("bad_conversation", index, location(record), structure)]
    messages = record["messages"]
    details = {
        "empty_output": _empty_output(record, messages),
        "bad_conversation": "; ".join(_conversation_problems(record, messages)[:3]) or None,
        "invalid_tool_call": "; ".join(_tool_call_problems(messages)[:3]) or None,
        "encoding": _encoding_problem(_labelled_texts(record, messages)),
        "too_short": _too_short(record, min_words),
    }
    return [
        Finding(check, index, location(record), detail)
        for check, detail in details.items()
        if detail
    ]


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


def _empty_output(record: Record, messages: list[dict[str, Any]]) -> str | None:
    if record.get("task") == "preference":
        return None if str(record.get("chosen") or "").strip() else "chosen answer is empty"
    turns = [m for m in messages if m.get("role") == "assistant"]
    # No assistant turn at all is reported once, as bad_conversation.
    if not turns or any(m.get("tool_calls") or (m.get("content") or "").strip() for m in turns):
        return None
    return "assistant answer is empty"


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
                json.loads(arguments)
            except json.JSONDecodeError as exc:
                problems.append(
                    f"message {k}, tool call {c} ({name}): arguments are not valid JSON: "
                    f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
                )
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
# Duplicates: exact (hash of normalised text) and near (MinHash + LSH, verified by Jaccard)


_NUM_PERM = 64  # MinHash permutations; the estimate's std error is <= 0.5/sqrt(64) = 0.0625
_SHINGLE_WORDS = 5
_SHINGLE_CHARS = 5  # character shingles for texts with fewer than _SHINGLE_WORDS words
_MIN_RECALL = 0.99  # LSH banding is chosen so pairs at the threshold become candidates this often
_ESTIMATE_MARGIN = 0.2  # > 3 std errors: candidates estimated this far below are not verified
_BUCKET_WINDOW = 8  # in a crowded LSH bucket, pair each record with this many before it
_CHUNK_VALUES = 1 << 22  # shingle x permutation values per MinHash block (32 MiB of uint64)
_TOKEN = re.compile(r"\w+|\x00")  # words, and the separator placed between texts
_TEXTS_PER_PASS = 4096


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _safe_full_text(record: Record) -> str:
    return "" if _structure_problem(record) else full_text(record)


def _safe_answer_text(record: Record) -> str:
    return "" if _structure_problem(record) else answer_text(record)


def _duplicate_links(
    records: list[Record], threshold: float, seed: int
) -> tuple[list[int], list[tuple[int, int, float]]]:
    """For each record the index of the first record with the same normalised text (itself when
    it is the first), and verified near-duplicate pairs (i < j, Jaccard) among first copies."""
    texts = [_normalise(_safe_full_text(r)) for r in records]
    seen: dict[bytes, int] = {}
    # Empty texts are already empty_output / bad_conversation; calling them duplicates is noise.
    firsts = [seen.setdefault(_digest(t), i) if t else i for i, t in enumerate(texts)]
    unique = [i for i, first in enumerate(firsts) if first == i and texts[i]]
    sketch = _Sketch.build([texts[i] for i in unique], seed)
    pairs = _candidate_pairs(_band_keys(sketch.signatures, threshold), left=None)
    near = [
        (unique[sketch.rows[a]], unique[sketch.rows[b]], jaccard)
        for a, b, jaccard in sketch.verify(pairs, threshold)
    ]
    return firsts, near


def _first_by_digest(texts: list[str]) -> dict[bytes, int]:
    """Digest of each distinct non-empty text -> index of its first occurrence."""
    first: dict[bytes, int] = {}
    for i, text in enumerate(texts):
        if text:
            first.setdefault(_digest(text), i)
    return first


def _exact_matches(train_texts: list[str], eval_texts: list[str]) -> dict[int, int]:
    first = _first_by_digest(train_texts)
    matches = {j: first.get(_digest(text), -1) for j, text in enumerate(eval_texts) if text}
    return {j: i for j, i in matches.items() if i >= 0}


def _near_matches(
    train_texts: list[str], eval_texts: list[str], threshold: float
) -> dict[int, tuple[int, float]]:
    """For each eval text, a train text (the first candidate) at or above `threshold`."""
    # One copy of each train text keeps LSH buckets small; which copy is named does not matter.
    keep = sorted(_first_by_digest(train_texts).values())
    texts = [train_texts[i] for i in keep] + eval_texts
    sketch = _Sketch.build(texts, seed=0)
    left = int(np.searchsorted(sketch.rows, len(keep)))  # sketched rows that are train texts
    pairs = _candidate_pairs(_band_keys(sketch.signatures, threshold), left=left)
    return {
        int(sketch.rows[b]) - len(keep): (keep[sketch.rows[a]], jaccard)
        for a, b, jaccard in sketch.verify(pairs, threshold, cross=True)
    }


def _shared_ngrams(
    train_answers: list[str], eval_answers: list[str], n: int
) -> dict[int, tuple[int, str]]:
    """For each eval answer, a train answer sharing a run of `n` words, and that run's start."""
    tokens = _Tokens.of(train_answers + eval_answers)
    hashes, owners, starts = _ngram_hashes(tokens.hashes(), tokens.lengths, n)
    is_train = owners < len(train_answers)
    order = np.argsort(hashes[is_train], kind="stable")  # ties keep the earliest train answer
    train_hashes = hashes[is_train][order]
    train_owner, train_start = owners[is_train][order], starts[is_train][order]
    eval_hashes, eval_owner, eval_start = hashes[~is_train], owners[~is_train], starts[~is_train]
    at = np.minimum(np.searchsorted(train_hashes, eval_hashes), max(len(train_hashes) - 1, 0))
    hits = np.flatnonzero(train_hashes[at] == eval_hashes) if len(train_hashes) else []
    # The first shared run of each eval answer (runs are in eval order).
    _, first = np.unique(eval_owner[hits], return_index=True)
    found: dict[int, tuple[int, str]] = {}
    for k in np.asarray(hits, dtype=np.int64)[first].tolist():
        a, b = int(eval_start[k]), int(train_start[at[k]])
        # Equal hashes of different words are possible in principle; compare the words.
        if np.array_equal(tokens.ids[a : a + n], tokens.ids[b : b + n]):
            words = " ".join(tokens.vocab[t] for t in tokens.ids[a : a + min(n, 8)])
            j = int(eval_owner[k]) - len(train_answers)
            found[j] = (int(train_owner[at[k]]), words + (" ..." if n > 8 else ""))
    return found


@dataclass
class _Tokens:
    """Lower-cased word tokens of many texts, back to back, as ids into `vocab`."""

    vocab: list[str]
    ids: np.ndarray  # int64 token ids of all texts, concatenated
    lengths: np.ndarray  # tokens per text

    @classmethod
    def of(cls, texts: Sequence[str]) -> _Tokens:
        index = {"\x00": 0}  # token -> id; id 0 ends each text
        parts = [np.zeros(0, np.int64)]
        # A regex pass and a dict lookup per token, both in C, over a few thousand texts at a
        # time: fast, without holding a Python string for every token of every text at once.
        for start in range(0, len(texts), _TEXTS_PER_PASS):
            chunk = texts[start : start + _TEXTS_PER_PASS]
            joined = ("\x00".join(chunk) + "\x00").lower()
            if joined.count("\x00") != len(chunk):  # a text holds the separator itself
                joined = ("\x00".join(t.replace("\x00", " ") for t in chunk) + "\x00").lower()
            found = _TOKEN.findall(joined)
            for token in dict.fromkeys(found):  # new tokens get the next ids, in order seen
                index.setdefault(token, len(index))
            parts.append(np.fromiter(map(index.__getitem__, found), np.int64, len(found)))
        ids = np.concatenate(parts)
        lengths = np.diff(np.flatnonzero(ids == 0), prepend=-1) - 1
        return cls(list(index), ids[ids != 0], lengths)

    def hashes(self) -> np.ndarray:
        """A stable 64-bit hash per token position (blake2b of each distinct token, once)."""
        digests = b"".join(
            hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            for t in self.vocab
        )
        return np.frombuffer(digests, dtype="<u8").astype(np.uint64)[self.ids]


def _splitmix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-mixed, stable 64-bit hash of integers."""
    x = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _ngram_hashes(
    base: np.ndarray, lengths: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hash of every run of `n` consecutive items inside each text, with the text it belongs to
    and its start in `base` (the items of all texts back to back). uint64 arithmetic wraps,
    so each hash is a polynomial in the item hashes mod 2^64, with one odd multiplier per
    position so that order matters."""
    per_text = np.maximum(lengths - n + 1, 0)
    count = len(base) - n + 1
    if count <= 0 or not per_text.any():
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    multipliers = _splitmix(np.arange(1, n + 1)) | np.uint64(1)
    hashes = base[:count] * multipliers[0]
    scratch = np.empty_like(hashes)
    for k in range(1, n):
        hashes += np.multiply(base[k : k + count], multipliers[k], out=scratch)
    # Drop runs that cross into the next text: the last min(n - 1, length) starts of each.
    crossing = lengths - per_text
    first_crossing = np.cumsum(lengths) - crossing
    step = np.arange(crossing.sum()) - np.repeat(np.cumsum(crossing) - crossing, crossing)
    dropped = np.repeat(first_crossing, crossing) + step
    valid = np.ones(count, bool)
    valid[dropped[dropped < count]] = False
    owners = np.repeat(np.arange(len(lengths)), per_text)
    return hashes[valid], owners, np.flatnonzero(valid)


class _UnionFind:
    """Disjoint sets over 0..n-1; each set's root is its smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees shallow
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class _Sketch:
    """MinHash signatures of the texts that have any shingles, and those shingles."""

    rows: np.ndarray  # for each sketched row, the position of its text in the input
    signatures: np.ndarray  # (rows, _NUM_PERM) uint64
    shingles: np.ndarray  # shingle hashes of all rows, grouped by row
    offsets: np.ndarray  # row k's shingles are shingles[offsets[k]:offsets[k + 1]]

    @classmethod
    def build(cls, texts: Sequence[str], seed: int) -> _Sketch:
        shingles, owners = _word_shingles(texts)
        # Texts under 5 words get character 5-shingles instead (padded so each has one).
        counts = np.bincount(owners, minlength=len(texts))
        short = [i for i, text in enumerate(texts) if text and counts[i] == 0]
        if short:
            chars, char_owners = _char_shingles([texts[i].lower() for i in short])
            shingles = np.concatenate([shingles, chars])
            owners = np.concatenate([owners, np.array(short)[char_owners]])
            order = np.argsort(owners, kind="stable")  # group every row's shingles together
            shingles, owners = shingles[order], owners[order]
            counts = np.bincount(owners, minlength=len(texts))
        rows = np.flatnonzero(counts)
        offsets = np.concatenate(([0], np.cumsum(counts[rows])))
        return cls(rows, _minhash(shingles, offsets, seed), shingles, offsets)

    def verify(
        self, pairs: np.ndarray, threshold: float, *, cross: bool = False
    ) -> list[tuple[int, int, float]]:
        """The candidate pairs (i, j), sorted by j then i, whose exact shingle Jaccard is at
        least `threshold`.

        A pair is skipped when verifying it cannot change the outcome: j already has its first
        match and (unless `cross`, where one match per eval row is enough) i and j are already
        linked through verified pairs. A cluster of near-copies then costs about one
        verification per row, however many candidate pairs it makes."""
        pairs = pairs[self._estimates(pairs) >= threshold - _ESTIMATE_MARGIN]
        links = _UnionFind(len(self.rows))
        matched: set[int] = set()
        verified = []
        for i, j in pairs.tolist():
            if j in matched and (cross or links.root(i) == links.root(j)):
                continue
            left, right = self._set(i), self._set(j)
            shared = np.intersect1d(left, right, assume_unique=True).size
            jaccard = shared / (left.size + right.size - shared)
            if jaccard >= threshold:
                verified.append((i, j, jaccard))
                matched.add(j)
                links.union(i, j)
        return verified

    def _estimates(self, pairs: np.ndarray) -> np.ndarray:
        """MinHash Jaccard estimate per pair: the share of equal signature values."""
        estimates = np.empty(len(pairs))
        step = 1 << 16  # pairs per pass: 2 x 65,536 x 64 x 8 bytes = 64 MiB of gathered rows
        for start in range(0, len(pairs), step):
            chunk = pairs[start : start + step]
            equal = self.signatures[chunk[:, 0]] == self.signatures[chunk[:, 1]]
            estimates[start : start + step] = equal.mean(axis=1)
        return estimates

    def _set(self, row: int) -> np.ndarray:
        return np.unique(self.shingles[self.offsets[row] : self.offsets[row + 1]])


def _word_shingles(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Word 5-shingle hashes of all texts, grouped by text, and the text each belongs to."""
    tokens = _Tokens.of(texts)
    hashes, owners, _ = _ngram_hashes(tokens.hashes(), tokens.lengths, _SHINGLE_WORDS)
    return hashes, owners


def _char_shingles(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Character 5-shingle hashes of short texts, and the text each belongs to."""
    if not texts:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    padded = [t.ljust(_SHINGLE_CHARS) for t in texts]
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype="<u4")
    lengths = np.array([len(t) for t in padded])
    hashes, owners, _ = _ngram_hashes(_splitmix(codes), lengths, _SHINGLE_CHARS)
    return hashes, owners


def _minhash(shingles: np.ndarray, offsets: np.ndarray, seed: int) -> np.ndarray:
    """(rows, _NUM_PERM) minimum of (a * h + b) mod 2^64 over each row's shingle hashes h, for
    _NUM_PERM seeded (a, b): each is a bijection of 64-bit values, so a hash permutation."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=_NUM_PERM, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=_NUM_PERM, dtype=np.uint64, endpoint=False)
    rows = len(offsets) - 1
    signatures = np.empty((rows, _NUM_PERM), np.uint64)
    per_block = max(1, _CHUNK_VALUES // _NUM_PERM)  # shingles per block
    start = 0
    while start < rows:
        # Rows whose shingles fit one block (always at least one row).
        stop = int(np.searchsorted(offsets, offsets[start] + per_block, side="right")) - 1
        stop = min(max(stop, start + 1), rows)
        block = shingles[offsets[start] : offsets[stop]]
        starts = offsets[start:stop] - offsets[start]
        for p in range(0, _NUM_PERM, _perm_step(len(block))):
            q = min(p + _perm_step(len(block)), _NUM_PERM)
            # Permutations along axis 0 so each reduceat runs over contiguous memory (~6x
            # faster than reducing down columns).
            values = a[p:q, None] * block[None, :]
            values += b[p:q, None]
            signatures[start:stop, p:q] = np.minimum.reduceat(values, starts, axis=1).T
        start = stop
    return signatures


def _perm_step(block_size: int) -> int:
    """Permutations per pass, so one very long text still fits the block budget."""
    return max(1, min(_NUM_PERM, _CHUNK_VALUES // max(block_size, 1)))


def _band_keys(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """(rows, bands) LSH keys: each band's signature values hashed into one uint64.

    Rows per band is the largest that still makes a pair at `threshold` a candidate with
    probability >= _MIN_RECALL (1 - (1 - t^r)^b); more rows per band means fewer false
    candidates to verify."""
    rows_per_band = 1
    for r in (2, 4, 8, 16, 32, 64):
        if _NUM_PERM % r == 0 and 1 - (1 - threshold**r) ** (_NUM_PERM // r) >= _MIN_RECALL:
            rows_per_band = r
    bands = _NUM_PERM // rows_per_band
    multipliers = _splitmix(np.arange(1, rows_per_band + 1)) | np.uint64(1)
    shaped = signatures.reshape(len(signatures), bands, rows_per_band)
    return (shaped * multipliers).sum(axis=2, dtype=np.uint64)


def _candidate_pairs(keys: np.ndarray, left: int | None) -> np.ndarray:
    """(pairs, 2) row pairs (i, j), i < j, that share an LSH bucket in some band, sorted by j
    then i. With `left`, only train x eval pairs, i < left <= j.

    Each row is paired with the _BUCKET_WINDOW eligible rows just before it in its bucket and
    with the bucket's first row, so small buckets give all their pairs and a crowded one
    (templated texts) costs O(rows x window) rather than O(rows^2); chains through the window
    still link a cluster into one group."""
    rows = len(keys)
    codes = [np.zeros(0, np.int64)]  # j * rows + i, so that sorting orders by j, then i
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")  # equal keys keep ascending rows
        ordered = keys[order, band]
        new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
        bucket_start = np.maximum.accumulate(np.where(new, np.arange(rows), 0))
        # Only positions with a row before them in their bucket can pair.
        positions = np.flatnonzero(~new)
        start = bucket_start[positions]
        if left is None:
            end = positions  # partners: the rows before this one
        else:
            # In a bucket train rows come first, so an eval row's partners end where they do.
            trains_before = np.cumsum(order < left) - (order < left)
            end = start + trains_before[positions] - trains_before[start]
            keep = order[positions] >= left
            positions, start, end = positions[keep], start[keep], end[keep]
        j = order[positions] * rows
        for back in range(1, _BUCKET_WINDOW + 1):
            ok = end - back >= start
            codes.append(j[ok] + order[end[ok] - back])
        first = end - _BUCKET_WINDOW > start  # the bucket's first row, when out of the window
        codes.append(j[first] + order[start[first]])
    unique = np.unique(np.concatenate(codes))
    return np.stack([unique % max(rows, 1), unique // max(rows, 1)], axis=1)
