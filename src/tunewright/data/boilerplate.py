"""Long runs of answer words shared between rows: boilerplate, and the groups the split keeps whole.

A run of `n` words (13 for leakage) found in many answers ("I'm sorry, but I don't have the
capability to ...") is boilerplate: the model should learn it, and an eval answer that repeats it
has not leaked. A run found in a few answers links them: the automatic split keeps them on one
side, as it does near-duplicates, so it cannot create the leakage the gate then refuses.

    AnswerNgrams.of(answers, n)        boilerplate hashes and phrases, and links between answers
    .groups(base, cap)                 `base` groups joined by the links, no group over `cap` rows
    boilerplate_report(ngrams, ...)    the report's `boilerplate` entry
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunewright.data.dedup import _TOKEN, _distinct, _members, _ngram_hashes, _Words
from tunewright.data.records import Record, location

LEAK_WORDS = 13  # a run of this many answer words shared with train is a leak

# An n-gram in at least 1% of the answers is boilerplate, but at least 5 answers (in a small
# file 1% is one row, and a real copy would vanish) and at most 20 (in a million rows, 20
# answers sharing 13 words are a formula, not one example copied).
_BOILERPLATE_SHARE = 0.01
_BOILERPLATE_MIN_ROWS = 5
_BOILERPLATE_MAX_ROWS = 20
# A split group joined through shared n-grams stops growing at 1% of the rows, at least 20,
# so chains of answers sharing different runs cannot pull most of the data onto one side.
_GROUP_SHARE = 0.01
_GROUP_MIN_ROWS = 20
_PHRASE_WORDS = 12  # words of a boilerplate phrase shown in the report
_PHRASES_SHOWN = 10
_ROWS_SHOWN = 3
_ANSWERS_PER_PASS = 65_536  # answers tokenized together (bounds the token arrays)


def boilerplate_rows(answers: int) -> int:
    """Distinct answers an n-gram must occur in to count as boilerplate."""
    share = math.ceil(_BOILERPLATE_SHARE * answers)
    return max(_BOILERPLATE_MIN_ROWS, min(_BOILERPLATE_MAX_ROWS, share))


def group_cap(rows: int) -> int:
    """The most rows a group joined through shared n-grams may hold."""
    return max(_GROUP_MIN_ROWS, math.ceil(_GROUP_SHARE * rows))


@dataclass(frozen=True)
class Phrase:
    text: str  # the first _PHRASE_WORDS words of the run ("..." after them when longer)
    rows: int  # distinct answers holding it
    examples: list[int]  # the first few of those answers (indices)


@dataclass
class AnswerNgrams:
    """Boilerplate runs of `n` words among answers, and the links their other shared runs make."""

    n: int
    min_rows: int  # boilerplate_rows(answers)
    count: int  # distinct boilerplate n-grams
    # Sorted uint64 hashes of the runs left out of leaks and links: the boilerplate n-grams and
    # every run that overlaps one ("... step by step. The" is boilerplate plus a common word).
    hashes: np.ndarray
    phrases: list[Phrase]  # boilerplate, overlapping n-grams of one answer merged; most rows first
    links: list[tuple[int, int]] = field(default_factory=list)  # answers sharing a rarer run
    # Entries (n-gram hash, answer) of the runs in 2+ answers that are not left out, by hash.
    shared_hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    shared_owners: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def of(cls, answers: list[str], n: int) -> AnswerNgrams:
        hashes, owners, starts, answer_starts = _answer_ngrams(answers, n)
        min_rows = boilerplate_rows(len(answers))
        # Runs come in position order, so a stable sort by hash keeps each n-gram's entries in
        # that order. Each array is replaced as it is sorted: a million answers make ~3 x 10^7
        # runs, and every copy of one array costs ~240 MB.
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        owners = owners[order]
        starts = starts[order]
        del order
        # One entry per (n-gram, answer): the first occurrence in each answer. Counted on the
        # sorted runs first, so the runs can go before the entries are copied out.
        first = np.ones(len(hashes), bool)
        first[1:] = (hashes[1:] != hashes[:-1]) | (owners[1:] != owners[:-1])
        new = np.ones(len(hashes), bool)
        new[1:] = hashes[1:] != hashes[:-1]
        run = np.cumsum(new, dtype=np.int32) - 1
        counted = np.concatenate(([0], np.cumsum(first, dtype=np.int32)))
        bounds = np.append(np.flatnonzero(new), len(hashes))
        rows = np.diff(counted[bounds])  # distinct answers per n-gram
        del counted, bounds
        boilerplate = hashes[new][rows >= min_rows]  # sorted, as the runs are
        # Every occurrence counts for what touches boilerplate, repeats within an answer too.
        ignored = _touching(hashes, starts, boilerplate, n, int(answer_starts[-1]))
        per_entry = rows[run[first]]
        new = new[first]
        hashes, owners, starts = hashes[first], owners[first], starts[first]
        del first, run
        common = per_entry >= min_rows
        shared = (per_entry >= 2) & ~_members(hashes, ignored)
        # Link each answer to the previous one holding the same rarer n-gram (a chain is enough).
        chained = shared & ~new
        links = list(
            zip(owners[np.flatnonzero(chained) - 1].tolist(), owners[chained].tolist(), strict=True)
        )
        firsts, counts = common & new, rows[rows >= min_rows]
        phrases = _phrases(answers, answer_starts, owners, starts, firsts, counts, n)
        ngrams = cls(n, min_rows, len(boilerplate), ignored, phrases, sorted(set(links)))
        # Kept for split_leaks: the (n-gram, answer) entries that can make a leak, by n-gram.
        ngrams.shared_hashes, ngrams.shared_owners = hashes[shared], owners[shared]
        return ngrams

    def leaking(self, sides: np.ndarray) -> np.ndarray:
        """The answers (indices) on the eval side that share a run, other than boilerplate,
        with an answer on the train side; `sides` holds per answer 1 for train, 0 for eval and
        -1 for neither."""
        if not len(self.shared_hashes):
            return np.zeros(0, np.int64)
        side = sides[self.shared_owners]
        new = np.ones(len(self.shared_hashes), bool)
        new[1:] = self.shared_hashes[1:] != self.shared_hashes[:-1]
        run = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        with_train = np.maximum.reduceat((side == 1).astype(np.int8), starts).astype(bool)
        return _distinct(self.shared_owners[(side == 0) & with_train[run]])

    def groups(self, base: list[int], cap: int) -> tuple[list[int], dict[str, int]]:
        """`base` (a group id per answer that is one of its members) joined by the links, no
        joined group passing `cap` rows, and what that did: rows in groups of two or more, the
        largest group, and the links left out by the cap (they may then show as leaks)."""
        parent = list(range(len(base)))
        size = [0] * len(base)
        for i, group in enumerate(base):
            parent[i] = group
        for group in base:
            size[group] += 1
        over_cap = 0
        for a, b in self.links:
            ra, rb = _root(parent, a), _root(parent, b)
            if ra == rb:
                continue
            if size[ra] + size[rb] > cap:
                over_cap += 1
                continue
            low, high = min(ra, rb), max(ra, rb)
            parent[high], size[low] = low, size[low] + size[high]
        groups = [_root(parent, i) for i in range(len(base))]
        counts = np.bincount(groups, minlength=1) if groups else np.zeros(1, np.int64)
        stats = {
            "cap": cap,
            "grouped_rows": int(counts[counts >= 2].sum()),
            "largest": int(counts.max()),
            "links_over_cap": over_cap,
        }
        return groups, stats


def _answer_ngrams(
    answers: list[str], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every run of `n` words of every answer: its hash, answer and start (the position among
    the words of all answers back to back); and where each answer's words start, then the
    total. Answers are tokenized a block at a time, so the token arrays of all of them never
    exist at once."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
        (np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, np.int32))
    ]
    lengths = [np.zeros(0, np.int64)]
    words = 0
    for at in range(0, len(answers), _ANSWERS_PER_PASS):
        tokens = _Words.of(answers[at : at + _ANSWERS_PER_PASS])
        hashes, owners, starts = _ngram_hashes(tokens.hashes, tokens.lengths, n)
        parts.append((hashes, owners + np.int32(at), starts + np.int32(words)))
        lengths.append(tokens.lengths)
        words += len(tokens.hashes)
    answer_starts = np.concatenate(([0], np.cumsum(np.concatenate(lengths))))
    joined = [np.concatenate([part[k] for part in parts]) for k in range(3)]
    return joined[0], joined[1], joined[2], answer_starts


def _touching(
    hashes: np.ndarray, starts: np.ndarray, boilerplate: np.ndarray, n: int, length: int
) -> np.ndarray:
    """Sorted hashes of the runs with a word inside some boilerplate occurrence (`hashes` and
    `starts`: every run, in any order; `length`: the word positions of all answers). Runs never
    cross answers, so positions alone decide."""
    at = starts[_members(hashes, boilerplate)]
    edges = np.zeros(length + 1, np.int32)
    np.add.at(edges, at, 1)
    np.add.at(edges, at + n, -1)
    covered = np.concatenate(([0], np.cumsum(np.cumsum(edges)[:length] > 0, dtype=np.int32)))
    return _distinct(hashes[covered[starts + n] - covered[starts] > 0])


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving keeps the trees shallow
        i = parent[i]
    return i


def _phrases(
    answers: list[str],
    answer_starts: np.ndarray,
    owners: np.ndarray,
    starts: np.ndarray,
    firsts: np.ndarray,
    rows: np.ndarray,
    n: int,
) -> list[Phrase]:
    """One phrase per boilerplate sentence: the boilerplate n-grams of each first answer that
    holds them, consecutive starts merged, so a 20-word sentence is one phrase, not eight."""
    where = np.flatnonzero(firsts)
    # A run's entries are sorted by answer, so its first few answers follow its first entry.
    examples = {
        k: owners[k : k + min(_ROWS_SHOWN, count)].tolist()
        for k, count in zip(where.tolist(), rows.tolist(), strict=True)
    }
    by_start = sorted(zip(starts[where].tolist(), rows.tolist(), where.tolist(), strict=True))
    merged: list[tuple[int, int, int, int]] = []  # (start, end, rows, entry)
    for start, count, k in by_start:
        if merged and start <= merged[-1][1] - n + 1:
            first, _, most, entry = merged[-1]
            merged[-1] = (first, start + n, max(most, count), entry)
        else:
            merged.append((start, start + n, count, k))
    merged.sort(key=lambda m: (-m[2], m[0]))
    phrases = []
    for start, end, count, k in merged[:_PHRASES_SHOWN]:
        shown = min(end - start, _PHRASE_WORDS)
        owner = int(owners[k])  # a merged phrase lies in one answer: runs never cross them
        local = start - int(answer_starts[owner])
        text = " ".join(_words(answers[owner])[local : local + shown])
        suffix = " ..." if end - start > shown else ""
        phrases.append(Phrase(text + suffix, count, sorted(set(examples[k]))))
    return phrases


def _words(answer: str) -> list[str]:
    """An answer's words as _Words.of reads them."""
    return _TOKEN.findall(answer.replace("\x00", " ").lower())


def boilerplate_report(
    ngrams: AnswerNgrams, records: list[Record], grouping: dict[str, int] | None
) -> dict[str, Any]:
    """The report's `boilerplate` entry: the rule, each phrase with its answer count and first
    locations, and (automatic split only) what grouping by shared runs did."""
    return {
        "ngram_words": ngrams.n,
        "min_rows": ngrams.min_rows,
        "count": ngrams.count,  # distinct boilerplate n-grams
        "phrases": [
            {
                "text": phrase.text,
                "rows": phrase.rows,
                "examples": [location(records[i]) for i in phrase.examples],
            }
            for phrase in ngrams.phrases
        ],
        "split_groups": grouping,
    }
