"""Duplicate detection over texts: exact copies (a digest of the normalised text) and near copies
(MinHash over word 3-shingles, LSH banding, then the exact Jaccard of each candidate pair). Under
40 words, where one changed word alters too many shingles, texts one word apart are candidates
too, and their word edit similarity counts: one word changed in 10 words is 0.9.

Texts are normalised first: NFC, and every run of whitespace as one space. Shingles are
lower-cased. All hashing is blake2b or seeded numpy arithmetic, so results never depend on
PYTHONHASHSEED.

    DuplicateIndex(texts, seed)        MinHash signatures of the distinct texts: the costly step
      .links(threshold[, texts])       exact and near links among indexed texts -> Links
    Links.groups()                     a group id per text, for keeping copies on one split side
    cross_duplicates(train, eval, t)   eval texts that copy a train text, exactly or nearly
    shared_ngrams(train, eval, n)      eval texts sharing a run of n words with a train text
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_NUM_PERM = 64  # MinHash permutations; the estimate's std error is <= 0.5/sqrt(64) = 0.0625
# One word changed mid-text alters k of the n - k + 1 word k-shingles: Jaccard (n - 2k + 1) /
# (n + 1). With k = 3 that is 0.85 at 40 words; k = 5 needed ~100 words to reach the default.
_SHINGLE_WORDS = 3
# Texts with fewer words get character 5-shingles: a handful of word shingles is too coarse (one
# typo in a 4-word text leaves 1 of 3 shingles shared) and 0-2 words have none at all.
_CHAR_SHINGLES_BELOW = 5
_SHINGLE_CHARS = 5
_MIN_RECALL = 0.99  # LSH banding is chosen so pairs at the threshold become candidates this often
_ESTIMATE_MARGIN = 0.2  # > 3 std errors: candidates estimated this far below are not verified
# Short rows (edit similarity counts) are verified from this estimate on: a Jaccard of 0.25,
# the lowest one within the edit threshold leaves, less 3 std errors (3 x 0.054 at 64 values).
_SHORT_ESTIMATE_FLOOR = 0.09
_BUCKET_WINDOW = 8  # in a crowded LSH bucket, pair each text with this many before it
_CHUNK_VALUES = 1 << 22  # shingle x permutation values per MinHash block (32 MiB of uint64)
# Below this many words, a word edit distance also counts (see _Sketch.verify): one word
# changed in 10 words leaves 5 of 8 word 3-shingles, Jaccard 0.45, but 9 of 10 words.
_EDIT_BELOW = 40
_TOKEN = re.compile(r"\w+|\x00")  # words, and the separator placed between texts
_TEXTS_PER_PASS = 4096
_TEXTS_PER_SKETCH = 65_536  # texts shingled and MinHashed together (bounds the peak)


@dataclass(frozen=True)
class Links:
    """Exact and near duplication among a list of texts."""

    # Per text, the index of the first text equal to it after normalisation; itself when it is
    # that first text, or when it is empty (empty texts are nobody's duplicate).
    firsts: list[int]
    # Verified near-duplicate pairs (i, j, Jaccard) among first copies: i < j, sorted by j then i.
    near: list[tuple[int, int, float]]

    def groups(self) -> list[int]:
        """A group id per text: texts linked, directly or through others, share one. The id is
        the group's smallest index, so it is stable for a given input order."""
        groups = _UnionFind(len(self.firsts))
        for i, first in enumerate(self.firsts):
            groups.union(first, i)
        for i, j, _ in self.near:
            groups.union(i, j)
        return [groups.root(i) for i in range(len(self.firsts))]


class DuplicateIndex:
    """MinHash signatures of the distinct non-empty texts given, computed once.

    Signatures are the costly part (~17 µs a text); `links` then finds duplicates among all the
    indexed texts or any list of them, e.g. those left after rejecting some, for ~2 µs a text."""

    def __init__(
        self, texts: Iterable[str], seed: int = 0, owners: Sequence[object] | None = None
    ) -> None:
        self.seed = seed
        normalised = [_normalise(text) for text in texts]
        self._digests = _digests(normalised)
        _, unique = _first_copies(self._digests)
        self._rows = {self._digests[i]: row for row, i in enumerate(unique)}  # -> sketch row
        self._sketch = _Sketch.build([normalised[i] for i in unique], seed)
        del normalised
        # (distinct non-empty texts, 64) uint32, in the order first seen.
        self.signatures: np.ndarray = self._sketch.signatures
        # The objects the texts came from (records), held so that their ids stay theirs: a
        # sub-list of them is then found by identity, without normalising its texts again.
        # Their ids sorted, with positions, take 16 bytes an owner; a dict took ~140.
        self._owners = list(owners) if owners is not None else []
        ids = np.fromiter(map(id, self._owners), np.uint64, len(self._owners))
        self._id_order = np.argsort(ids, kind="stable")
        self._ids = ids[self._id_order]
        self._links: dict[float, Links] = {}

    def positions(self, owners: Iterable[object]) -> list[int] | None:
        """The indexed position of each owner given, or None if one was not indexed."""
        wanted = np.fromiter(map(id, owners), np.uint64)
        if not len(self._ids):
            return None if len(wanted) else []
        at = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
        if not (self._ids[at] == wanted).all():
            return None
        return self._id_order[at].tolist()

    def links(
        self,
        threshold: float,
        texts: Iterable[str] | None = None,
        *,
        positions: Sequence[int] | None = None,
    ) -> Links:
        """Links among `texts` (by default the texts indexed), whose indices refer to `texts`;
        every text must have been indexed, and the answer is the same as from a new index of
        them. Or, cheaper, among the indexed texts at `positions` (indices refer to
        `positions`): the links among all indexed texts, computed once, restricted to them."""
        if positions is not None:
            return self._restricted(self._all_links(threshold), positions)
        digests = self._digests if texts is None else _digests(map(_normalise, texts))
        firsts, unique = _first_copies(digests)
        rows = [self._rows.get(digests[i], -1) for i in unique]
        if -1 in rows:
            raise ValueError("links() was given a text that the index was not built from")
        sketch = self._sketch.select(np.array(rows, dtype=np.int64))
        pairs = _candidate_pairs(_band_keys(sketch.signatures, threshold), left=None)
        verified = sketch.verify(pairs, threshold)
        return Links(firsts, [(unique[a], unique[b], jaccard) for a, b, jaccard in verified])

    def _all_links(self, threshold: float) -> Links:
        """Links among every indexed text, computed once per threshold."""
        if threshold not in self._links:
            self._links[threshold] = self.links(threshold)
        return self._links[threshold]

    def _restricted(self, links: Links, positions: Sequence[int]) -> Links:
        """`links` (over every indexed text) among the texts at `positions` only: the near
        pairs of their texts, each text named by its first copy among them."""
        digests = [self._digests[k] for k in positions]
        firsts, unique = _first_copies(digests)
        at = {digests[k]: k for k in unique}
        near = []
        for i, j, jaccard in links.near:
            a, b = at.get(self._digests[i]), at.get(self._digests[j])
            if a is not None and b is not None and a != b:
                near.append((min(a, b), max(a, b), jaccard))
        near.sort(key=lambda pair: (pair[1], pair[0]))
        return Links(firsts, near)

    def cross(
        self, train: Sequence[int], eval: Sequence[int], threshold: float
    ) -> dict[int, tuple[int, float | None]]:
        """cross_duplicates of the indexed texts at positions `train` and `eval`, with indices
        into those lists, from the signatures already computed."""
        first: dict[bytes, int] = {}
        for k, position in enumerate(train):
            digest = self._digests[position]
            if digest is not None:
                first.setdefault(digest, k)
        found: dict[int, tuple[int, float | None]] = {}
        evals: list[int] = []
        rows = [self._rows[digest] for digest in first]  # the distinct train texts, in order
        for j, position in enumerate(eval):
            digest = self._digests[position]
            if digest is None:
                continue
            if digest in first:
                found[j] = (first[digest], None)
            else:
                evals.append(j)
                rows.append(self._rows[digest])
        keep = list(first.values())
        sketch = self._sketch.select(np.array(rows, dtype=np.int64))
        pairs = _candidate_pairs(_band_keys(sketch.signatures, threshold), left=len(keep))
        for a, b, jaccard in sketch.verify(pairs, threshold, cross=True, left=len(keep)):
            found.setdefault(evals[b - len(keep)], (keep[a], jaccard))
        return found


def cross_duplicates(
    train_texts: Iterable[str], eval_texts: Iterable[str], threshold: float
) -> dict[int, tuple[int, float | None]]:
    """For each eval text that copies a train text: that train text's index and their Jaccard,
    or None for an exact copy (equal after normalisation). An exact copy is named when there is
    one, the first train text with that text; otherwise the first verified near copy."""
    train = [_normalise(text) for text in train_texts]
    evals = [(j, text) for j, text in enumerate(map(_normalise, eval_texts)) if text]
    # One copy of each train text keeps LSH buckets small; which copy is named does not matter.
    train_digests = _digests(train)
    _, keep = _first_copies(train_digests)
    first = {train_digests[i]: i for i in keep}
    exact = ((j, first.get(_digest(text))) for j, text in evals)
    found: dict[int, tuple[int, float | None]] = {j: (i, None) for j, i in exact if i is not None}
    sketch = _Sketch.build([train[i] for i in keep] + [text for _, text in evals], seed=0)
    pairs = _candidate_pairs(_band_keys(sketch.signatures, threshold), left=len(keep))
    for a, b, jaccard in sketch.verify(pairs, threshold, cross=True, left=len(keep)):
        found.setdefault(evals[b - len(keep)][0], (keep[a], jaccard))
    return found


def shared_ngrams(
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    n: int,
    ignore: np.ndarray | None = None,
) -> dict[int, tuple[int, str]]:
    """For each eval text sharing a run of `n` words (case-insensitive) with a train text: that
    train text's index and the run's first 8 words ("..." after them when `n` > 8).

    `ignore`: sorted hashes of runs that do not count (boilerplate, from AnswerNgrams)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    tokens = _Tokens.of([*train_texts, *eval_texts])
    hashes, owners, starts = _ngram_hashes(tokens.hashes(), tokens.lengths, n)
    if ignore is not None and len(ignore):
        keep = ~_members(hashes, _distinct(ignore))
        hashes, owners, starts = hashes[keep], owners[keep], starts[keep]
    is_train = owners < len(train_texts)
    order = np.argsort(hashes[is_train], kind="stable")  # ties keep the earliest train text
    train_hashes = hashes[is_train][order]
    train_owner, train_start = owners[is_train][order], starts[is_train][order]
    eval_hashes, eval_owner, eval_start = hashes[~is_train], owners[~is_train], starts[~is_train]
    at = np.minimum(np.searchsorted(train_hashes, eval_hashes), max(len(train_hashes) - 1, 0))
    hits = np.flatnonzero(train_hashes[at] == eval_hashes) if len(train_hashes) else []
    # The first shared run of each eval text (runs are in eval order).
    _, first = np.unique(eval_owner[hits], return_index=True)  # a few: eval rows with hits
    found: dict[int, tuple[int, str]] = {}
    for k in np.asarray(hits, dtype=np.int64)[first].tolist():
        a, b = int(eval_start[k]), int(train_start[at[k]])
        # Equal hashes of different words are possible in principle; compare the words.
        if np.array_equal(tokens.ids[a : a + n], tokens.ids[b : b + n]):
            words = " ".join(tokens.vocab[t] for t in tokens.ids[a : a + min(n, 8)])
            j = int(eval_owner[k]) - len(train_texts)
            found[j] = (int(train_owner[at[k]]), words + (" ..." if n > 8 else ""))
    return found


# ---------------------------------------------------------------------------------------------
# Normalising and hashing


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _digests(normalised: Iterable[str]) -> list[bytes | None]:
    """Digest of each normalised text; None for an empty one."""
    return [_digest(text) if text else None for text in normalised]


def _first_copies(digests: list[bytes | None]) -> tuple[list[int], list[int]]:
    """Per text the index of the first text with its digest (itself when empty), and the
    indices of those first texts, in order."""
    seen: dict[bytes, int] = {}
    firsts = [i if d is None else seen.setdefault(d, i) for i, d in enumerate(digests)]
    unique = [i for i, first in enumerate(firsts) if first == i and digests[i] is not None]
    return firsts, unique


@dataclass
class _Tokens:
    """Lower-cased word tokens of many texts, back to back, as ids into `vocab`."""

    vocab: list[str]
    ids: np.ndarray  # int32 token ids of all texts, concatenated
    lengths: np.ndarray  # tokens per text

    @classmethod
    def of(cls, texts: Sequence[str]) -> _Tokens:
        index = {"\x00": 0}  # token -> id; id 0 ends each text
        parts = [np.zeros(0, np.int32)]
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
            parts.append(np.fromiter(map(index.__getitem__, found), np.int32, len(found)))
        ids = np.concatenate(parts)
        lengths = np.diff(np.flatnonzero(ids == 0), prepend=-1) - 1
        return cls(list(index), ids[ids != 0], lengths)

    def numbers(self) -> np.ndarray:
        """Per token position, whether it is a number (digits only)."""
        return np.array([token.isdigit() for token in self.vocab])[self.ids]

    def hashes(self) -> np.ndarray:
        """A stable 64-bit hash per token position (_token_hashes of each distinct token)."""
        # Entry 0 is the text separator, never a word: hashed as "" so the runs line up.
        encoded = "\x00".join(["", *self.vocab[1:]]).encode("utf-8", "surrogatepass")
        data = np.frombuffer(encoded, np.uint8)
        ends = np.append(np.flatnonzero(data == 0), len(data))
        starts = np.concatenate(([0], ends[:-1] + 1))
        return _token_hashes(data, starts, ends)[self.ids]


@dataclass
class _Words:
    """The word hashes of many texts back to back (lower-cased `\\w+` runs, as _Tokens reads
    them, hashed as _Tokens.hashes does), the words per text, and which words are numbers.

    ASCII texts, most of them, are split and hashed with array operations on their bytes,
    about 4x faster than a regex pass and a dict lookup per word; a block holding any other
    character goes through _Tokens. Both give the same hash to the same word."""

    hashes: np.ndarray  # uint64 per word
    lengths: np.ndarray  # words per text
    numbers: np.ndarray  # per word: digits only

    @classmethod
    def of(cls, texts: Sequence[str]) -> _Words:
        parts = [
            cls._block(texts[start : start + _TEXTS_PER_PASS])
            for start in range(0, len(texts), _TEXTS_PER_PASS)
        ]
        if not parts:
            return cls(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, bool))
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in cls._KEYS))

    _KEYS = ("hashes", "lengths", "numbers")

    @classmethod
    def _block(cls, texts: Sequence[str]) -> _Words:
        joined = "\x00".join(texts) + "\x00"
        if not joined.isascii() or joined.count("\x00") != len(texts):
            tokens = _Tokens.of(texts)
            return cls(tokens.hashes(), tokens.lengths, tokens.numbers())
        data = np.frombuffer(joined.lower().encode("ascii"), np.uint8)
        word = _WORD_BYTES[data]
        edge = np.diff(word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
        separators = np.flatnonzero(data == 0)
        # Words per text: how many word starts fall before each text's separator.
        lengths = np.diff(np.searchsorted(starts, separators), prepend=0)
        not_digit = np.concatenate(([0], np.cumsum(word & ~_DIGIT_BYTES[data], dtype=np.int64)))
        numbers = not_digit[ends] == not_digit[starts]
        return cls(_token_hashes(data, starts, ends), lengths, numbers)


# Bytes of `\\w` among lower-case ASCII, and the digits among them.
_WORD_BYTES = np.zeros(256, bool)
_WORD_BYTES[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789_", np.uint8)] = True
_DIGIT_BYTES = np.zeros(256, bool)
_DIGIT_BYTES[np.frombuffer(b"0123456789", np.uint8)] = True
_BASE = 0x100000001B3  # odd, so it has an inverse mod 2^64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)


def _token_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each byte run data[starts[k]:ends[k]]: the polynomial sum of its bytes
    (each + 1) times powers of _BASE mod 2^64, from prefix sums over all of `data` and rescaled
    by the run's start, then mixed with its length by splitmix. Wrapping uint64 arithmetic is
    the mod."""
    n = len(data)
    powers = np.full(n + 1, _BASE, np.uint64)
    powers[0] = 1
    np.cumprod(powers, out=powers)
    inverse = np.full(n + 1, _BASE_INVERSE, np.uint64)
    inverse[0] = 1
    np.cumprod(inverse, out=inverse)
    prefix = np.zeros(n + 1, np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * powers[:n], out=prefix[1:])
    sums = (prefix[ends] - prefix[starts]) * inverse[starts]
    return _splitmix(sums ^ ((ends - starts).astype(np.uint64) << np.uint64(56)))


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
        return np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, np.int32)
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
    del scratch, dropped, step
    hashes = hashes[valid]
    # int32 positions: 4 bytes a run less, and a million rows hold ~10^8 words at most.
    owners = np.repeat(np.arange(len(lengths), dtype=np.int32), per_text)
    return hashes, owners, np.flatnonzero(valid).astype(np.int32)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values. numpy 2.x's np.unique hashes integers, which took ~60 s for
    3 x 10^7 values here; sorting takes a quarter of a second."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def _members(values: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """Per value, whether it is in `ordered` (sorted, distinct): np.isin without its sort of
    both arrays together, a block at a time (a million answers hold ~3 x 10^7 runs)."""
    out = np.zeros(len(values), bool)
    if not len(ordered):
        return out
    step = 1 << 22
    for start in range(0, len(values), step):
        block = values[start : start + step]
        at = np.minimum(np.searchsorted(ordered, block), len(ordered) - 1)
        out[start : start + step] = ordered[at] == block
    return out


def _occurrences(values: np.ndarray) -> np.ndarray:
    """How often each value occurs, for every position (np.unique's counts[inverse])."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.ones(len(ordered), bool)
    new[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(ordered)))
    out = np.empty(len(values), np.int64)
    out[order] = np.repeat(counts, counts)
    return out


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


# ---------------------------------------------------------------------------------------------
# MinHash sketch, LSH candidates and their verification


@dataclass
class _Sketch:
    """MinHash signatures of non-empty normalised texts (one row each), and their shingles."""

    signatures: np.ndarray  # (rows, _NUM_PERM) uint32
    shingles: np.ndarray  # uint32 shingle hashes of all rows, each row's together
    starts: np.ndarray  # row k's shingles are shingles[starts[k]:ends[k]]
    ends: np.ndarray
    words: _ShortWords  # word hashes of the rows under _EDIT_BELOW words

    @classmethod
    def build(cls, texts: Sequence[str], seed: int) -> _Sketch:
        """A block of texts at a time: tokens and n-gram arrays of all texts at once cost ~3 KB
        a text at the peak, which a million rows cannot afford."""
        parts = [
            cls._build(texts[start : start + _TEXTS_PER_SKETCH], seed)
            for start in range(0, max(len(texts), 1), _TEXTS_PER_SKETCH)
        ]
        if len(parts) == 1:
            return parts[0]
        shift = np.cumsum([0] + [len(part.shingles) for part in parts[:-1]])
        word_shift = np.cumsum([0] + [len(part.words.hashes) for part in parts[:-1]])
        return cls(
            np.concatenate([part.signatures for part in parts]),
            np.concatenate([part.shingles for part in parts]),
            np.concatenate([part.starts + k for part, k in zip(parts, shift, strict=True)]),
            np.concatenate([part.ends + k for part, k in zip(parts, shift, strict=True)]),
            _ShortWords(
                np.concatenate([part.words.hashes for part in parts]),
                np.concatenate(
                    [p.words.starts + k for p, k in zip(parts, word_shift, strict=True)]
                ),
                np.concatenate([p.words.ends + k for p, k in zip(parts, word_shift, strict=True)]),
                np.concatenate([part.words.numbers for part in parts]),
            ),
        )

    @classmethod
    def _build(cls, texts: Sequence[str], seed: int) -> _Sketch:
        # Shingling's token arrays are freed before MinHash, whose blocks then set the peak.
        shingles, offsets, words = _shingles(texts)
        # The top 32 bits of each shingle hash are kept: two of a pair's ~50 shingles are equal
        # by chance once in ~2 million pairs, and a million rows keep ~200 MB less.
        shingles = (shingles >> np.uint64(32)).astype(np.uint32)
        signatures = _minhash(shingles, offsets, seed)
        return cls(signatures, shingles, offsets[:-1], offsets[1:], words)

    def select(self, rows: np.ndarray) -> _Sketch:
        """The sketch of some rows, in the order given (shingles are shared, not copied)."""
        return _Sketch(
            self.signatures[rows],
            self.shingles,
            self.starts[rows],
            self.ends[rows],
            self.words.select(rows),
        )

    def verify(
        self,
        pairs: np.ndarray,
        threshold: float,
        *,
        cross: bool = False,
        left: int | None = None,
    ) -> list[tuple[int, int, float]]:
        """The candidate pairs (i, j), with the pairs of short rows one word apart (train x eval
        only, i < left <= j, with `left`), whose similarity is at least `threshold`: the exact
        shingle Jaccard, or for two rows under _EDIT_BELOW words the larger of it and their word
        edit similarity, 1 - edits / words of the longer (one word changed in 10: 0.9). Pairs
        are verified sorted by j then i.

        A pair is skipped when verifying it cannot change the outcome: j already has its first
        match and (unless `cross`, where one match per eval row is enough) i and j are already
        linked through verified pairs. A cluster of near-copies then costs about one
        verification per row, however many candidate pairs it makes."""
        pairs = _sorted_pairs(pairs, self.words.overlap_pairs(threshold, left), len(self.ends))
        # A low Jaccard estimate rules a pair out. Two short rows within the edit similarity
        # threshold can have a much lower Jaccard (k words changed in n leave about
        # (n - 3k) / (n + 3k) of the 3-shingles, 0.25 at worst for k <= 0.15 n), so they get a
        # floor of their own.
        estimates = self._estimates(pairs)
        likely = estimates >= threshold - _ESTIMATE_MARGIN
        short = self.words.both_short(pairs) & (estimates >= _SHORT_ESTIMATE_FLOOR)
        pairs = pairs[likely | short]
        links = _UnionFind(len(self.signatures))
        matched: set[int] = set()
        verified = []
        for i, j in pairs.tolist():
            if j in matched and (cross or links.root(i) == links.root(j)):
                continue
            left, right = self._set(i), self._set(j)
            shared = len(left & right)
            jaccard = shared / (len(left) + len(right) - shared)
            if jaccard < threshold:
                jaccard = max(jaccard, self.words.similarity(i, j, threshold))
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

    def _set(self, row: int) -> set[int]:
        return set(self.shingles[self.starts[row] : self.ends[row]].tolist())


def _shingles(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, _ShortWords]:
    """Shingle hashes of non-empty texts, each text's together, and the offset where each
    text's begin, then the end: word 3-shingles, or character 5-shingles for short texts. And
    the words of the texts under _EDIT_BELOW words."""
    tokens = _Words.of(texts)
    words = _ShortWords.of(tokens.hashes, tokens.lengths, tokens.numbers)
    shingles, owners, _ = _ngram_hashes(tokens.hashes, tokens.lengths, _SHINGLE_WORDS)
    lengths = tokens.lengths
    del tokens
    short = lengths < _CHAR_SHINGLES_BELOW
    if short.any():
        keep = ~short[owners]
        rows = np.flatnonzero(short)
        chars, char_owners = _char_shingles([texts[i].lower() for i in rows])
        shingles = np.concatenate([shingles[keep], chars])
        owners = np.concatenate([owners[keep], rows[char_owners]])
        order = np.argsort(owners, kind="stable")  # group every text's shingles together
        shingles, owners = shingles[order], owners[order]
    offsets = np.concatenate(([0], np.cumsum(np.bincount(owners, minlength=len(texts)))))
    # Invariant: a non-empty text has >= 1 shingle, so every MinHash minimum is defined.
    assert (np.diff(offsets) > 0).all(), "a text without shingles"
    return shingles, offsets, words


def _char_shingles(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Character 5-shingle hashes of short texts, and the text each belongs to."""
    padded = [t.ljust(_SHINGLE_CHARS) for t in texts]  # so that each has at least one
    codes = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    lengths = np.array([len(t) for t in padded])
    hashes, owners, _ = _ngram_hashes(_splitmix(codes), lengths, _SHINGLE_CHARS)
    return hashes, owners


def _minhash(shingles: np.ndarray, offsets: np.ndarray, seed: int) -> np.ndarray:
    """(rows, _NUM_PERM) top 32 bits of the minimum of (a * h + b) mod 2^64 over each row's
    shingle hashes h, for _NUM_PERM seeded (a, b): each is a bijection of 64-bit values, so a
    hash permutation."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=_NUM_PERM, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=_NUM_PERM, dtype=np.uint64, endpoint=False)
    rows = len(offsets) - 1
    # The top 32 bits of each minimum (the top bits of the minimum are the minimum of the top
    # bits): equal by chance once in 4 billion, at half the memory of 64.
    signatures = np.empty((rows, _NUM_PERM), np.uint32)
    per_block = max(1, _CHUNK_VALUES // _NUM_PERM)  # shingles per block
    start = 0
    while start < rows:
        # Rows whose shingles fit one block (always at least one row).
        stop = int(np.searchsorted(offsets, offsets[start] + per_block, side="right")) - 1
        stop = min(max(stop, start + 1), rows)
        block = shingles[offsets[start] : offsets[stop]]
        starts = offsets[start:stop] - offsets[start]
        # Permutations per pass, so that one very long text still fits the block budget.
        step = max(1, min(_NUM_PERM, _CHUNK_VALUES // max(len(block), 1)))
        for p in range(0, _NUM_PERM, step):
            q = min(p + step, _NUM_PERM)
            # Permutations along axis 0 so each reduceat runs over contiguous memory (~6x
            # faster than reducing down columns).
            values = a[p:q, None] * block[None, :]
            values += b[p:q, None]
            minima = np.minimum.reduceat(values, starts, axis=1).T
            signatures[start:stop, p:q] = minima >> np.uint64(32)
        start = stop
    return signatures


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

    A bucket is ordered by the next band's key, so rows that share that band too (the likely
    near-copies) sit side by side. Each row is then paired with the _BUCKET_WINDOW rows just
    before it (with `left`: each eval row with the nearest train rows on either side) and with
    the bucket's first row, so small buckets give all their pairs and a crowded one (templated
    texts) costs O(rows x window) rather than O(rows^2) without losing its closest pairs;
    chains through the window still link a cluster into one group."""
    rows, bands = keys.shape
    codes = [np.zeros(0, np.int64)]  # j * rows + i, so that sorting orders by j, then i
    for band in range(bands):
        order = np.lexsort((keys[:, (band + 1) % bands], keys[:, band]))
        ordered = keys[order, band]
        new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
        bucket = np.cumsum(new) - 1
        firsts = np.flatnonzero(new)
        bucket_start = firsts[bucket]
        if left is None:
            codes += _window_pairs(order, bucket_start, rows)
        else:
            bucket_end = np.append(firsts[1:], rows)[bucket]
            codes += _cross_window_pairs(order, bucket_start, bucket_end, left, rows)
    unique = _distinct(np.concatenate(codes))
    return np.stack([unique % max(rows, 1), unique // max(rows, 1)], axis=1)


def _window_pairs(order: np.ndarray, bucket_start: np.ndarray, rows: int) -> list[np.ndarray]:
    """Codes of each position paired with the _BUCKET_WINDOW before it in its bucket, and with
    the bucket's first row."""
    out = []
    positions = np.arange(len(order))
    for back in range(1, _BUCKET_WINDOW + 1):
        ok = positions - back >= bucket_start
        a, b = order[positions[ok]], order[positions[ok] - back]
        out.append(np.maximum(a, b) * rows + np.minimum(a, b))
    far = positions - _BUCKET_WINDOW > bucket_start  # the bucket's first row, out of the window
    a, b = order[far], order[bucket_start[far]]
    out.append(np.maximum(a, b) * rows + np.minimum(a, b))
    return out


def _cross_window_pairs(
    order: np.ndarray, bucket_start: np.ndarray, bucket_end: np.ndarray, left: int, rows: int
) -> list[np.ndarray]:
    """Codes of each eval row (>= left) paired with the _BUCKET_WINDOW nearest train rows
    before it and after it in its bucket."""
    is_train = order < left
    train_at = np.flatnonzero(is_train)
    eval_at = np.flatnonzero(~is_train)
    if not len(train_at) or not len(eval_at):
        return []
    below = np.searchsorted(train_at, eval_at)  # train positions before each eval position
    low, high = bucket_start[eval_at], bucket_end[eval_at]
    j = order[eval_at] * rows
    out = []
    for step in range(_BUCKET_WINDOW):
        for k in (below - 1 - step, below + step):
            ok = (k >= 0) & (k < len(train_at))
            at = train_at[np.clip(k, 0, len(train_at) - 1)]
            ok &= (at >= low) & (at < high)
            out.append(j[ok] + order[at[ok]])
    return out


# ---------------------------------------------------------------------------------------------
# Short texts: candidates by word overlap, and word edit similarity


@dataclass
class _ShortWords:
    """Word hashes of the rows under _EDIT_BELOW words, each row's together; other rows have
    none. Costs 8 bytes a word of those rows."""

    hashes: np.ndarray  # uint64
    starts: np.ndarray  # row k's words are hashes[starts[k]:ends[k]]
    ends: np.ndarray
    # Per row, the sum of its numbers' hashes: "what is 3 plus 4" and "what is 3 plus 5" are
    # one word apart but different questions, so rows whose numbers differ are not compared.
    numbers: np.ndarray

    @classmethod
    def of(cls, word_hashes: np.ndarray, lengths: np.ndarray, numbers: np.ndarray) -> _ShortWords:
        short = (lengths > 0) & (lengths < _EDIT_BELOW)
        kept = np.repeat(short, lengths)
        offsets = np.concatenate(([0], np.cumsum(np.where(short, lengths, 0))))
        zero = np.zeros(1, np.uint64)
        summed = np.concatenate(
            (zero, np.cumsum(np.where(numbers, word_hashes, 0), dtype=np.uint64))
        )
        ends = np.cumsum(lengths)
        digests = summed[ends] - summed[ends - lengths]
        return cls(word_hashes[kept], offsets[:-1], offsets[1:], digests)

    def select(self, rows: np.ndarray) -> _ShortWords:
        return _ShortWords(self.hashes, self.starts[rows], self.ends[rows], self.numbers[rows])

    def similarity(self, i: int, j: int, at_least: float = 0.0) -> float:
        """1 - word edits / words of the longer text; 0 unless both rows are short and hold
        the same numbers. 0 also when it cannot reach `at_least`: an edit per word the other
        text lacks bounds it without the quadratic edit distance."""
        if self.numbers[i] != self.numbers[j]:
            return 0.0
        a = self.hashes[self.starts[i] : self.ends[i]].tolist()
        b = self.hashes[self.starts[j] : self.ends[j]].tolist()
        if not a or not b:
            return 0.0
        longer = max(len(a), len(b))
        if sum((Counter(a) & Counter(b)).values()) / longer < at_least:
            return 0.0
        return 1 - _edit_distance(a, b) / longer

    def both_short(self, pairs: np.ndarray) -> np.ndarray:
        """Per pair, whether both rows are short (their edit similarity counts)."""
        short = self.ends > self.starts
        return short[pairs[:, 0]] & short[pairs[:, 1]]

    def overlap_pairs(self, threshold: float, left: int | None) -> np.ndarray:
        """(pairs, 2) short rows (i, j), i < j, that may be within `threshold` edit similarity:
        every pair whose word multisets overlap in at least `threshold` of the longer row's
        words, which edit similarity >= threshold needs. Found by prefix filtering: order all
        words (each occurrence of a word in a row counts once) by how rare they are; two rows
        overlapping that much share a word among the |row| - ceil(threshold x |row|) + 1 rarest
        of each. So a few words changed anywhere in a 30-word row are found every time, for a
        handful of keys a row."""
        lengths = self.ends - self.starts
        total = int(lengths.sum())
        if threshold >= 1 or not total:
            return np.zeros((0, 2), np.int64)
        owners = np.repeat(np.arange(len(lengths)), lengths)
        # Rows may be a selection: gather each one's words from where they are kept.
        offset = np.repeat(self.starts - (np.cumsum(lengths) - lengths), lengths)
        words = self.hashes[np.arange(total) + offset]
        # Each occurrence of a word in a row becomes its own token (multiset -> set).
        order = np.lexsort((words, owners))
        words, owners = words[order], owners[order]
        new = np.ones(total, bool)
        new[1:] = (words[1:] != words[:-1]) | (owners[1:] != owners[:-1])
        run_start = np.maximum.accumulate(np.where(new, np.arange(total), 0))
        occurrence = (np.arange(total) - run_start).astype(np.uint64)
        tokens = _splitmix(words ^ _splitmix(occurrence))
        counts = _occurrences(tokens)
        # Rarest first within each row; ties broken by the token, so the order is global.
        order = np.lexsort((tokens, counts, owners))
        tokens, owners = tokens[order], owners[order]
        rank = np.arange(total) - (np.cumsum(lengths) - lengths)[owners]
        prefix = lengths - np.ceil(threshold * lengths - 1e-9).astype(np.int64) + 1
        keep = rank < prefix[owners]
        pairs = _key_pairs(tokens[keep], owners[keep], len(lengths), left)
        # Rows with other numbers are never similar (see `numbers`): drop them before verifying.
        return pairs[self.numbers[pairs[:, 0]] == self.numbers[pairs[:, 1]]]


def _key_pairs(keys: np.ndarray, owners: np.ndarray, rows: int, left: int | None) -> np.ndarray:
    """(pairs, 2) rows (i, j), i < j, sharing a key: each row with the _BUCKET_WINDOW rows
    before it under the key (templated texts make crowded keys), as in _candidate_pairs."""
    order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    distinct = np.ones(len(keys), bool)
    distinct[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
    keys, owners = keys[distinct], owners[distinct]
    codes = [np.zeros(0, np.int64)]
    for back in range(1, _BUCKET_WINDOW + 1):
        at = np.flatnonzero(keys[back:] == keys[:-back]) + back if len(keys) > back else []
        i, j = owners[np.asarray(at, np.int64) - back], owners[np.asarray(at, np.int64)]
        if left is not None:
            keep = (i < left) & (j >= left)
            i, j = i[keep], j[keep]
        codes.append(j.astype(np.int64) * rows + i)
    unique = _distinct(np.concatenate(codes))
    return np.stack([unique % max(rows, 1), unique // max(rows, 1)], axis=1)


def _sorted_pairs(a: np.ndarray, b: np.ndarray, rows: int) -> np.ndarray:
    """The pairs of both, each once, sorted by j then i."""
    codes = _distinct(np.concatenate([a[:, 1] * rows + a[:, 0], b[:, 1] * rows + b[:, 0]]))
    return np.stack([codes % max(rows, 1), codes // max(rows, 1)], axis=1)


def _edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two word lists (under _EDIT_BELOW words each)."""
    previous = list(range(len(b) + 1))
    for x, word in enumerate(a, start=1):
        current = [x]
        for y, other in enumerate(b, start=1):
            current.append(
                min(previous[y] + 1, current[y - 1] + 1, previous[y - 1] + (word != other))
            )
        previous = current
    return previous[-1]
