"""Mixing training sources: `weight` (a share of the training rows) and `max_rows` on
`data.train` entries, e.g. to mix replay data of general instructions into a narrow task so the
model does not forget what it could do.

Both apply after the checks and the split, to the training rows only: eval measures each source
as it is. `max_rows` keeps a seeded random choice of that many of the entry's rows. Then, when
any entry has a weight, the training set is rebuilt to those shares:

- every entry weighted: weights are relative (normalised to sum 1) and the training set keeps
  its size;
- some entries unweighted: weights are fractions of the training set (they must sum below 1),
  and the unweighted entries fill the rest with all their rows, once each.

An entry with fewer rows than its share repeats them (whole copies first, then a random choice
of the remainder, so repeats are spread evenly); one with more gives a random choice. Repeats are
not duplicates (the checks ran before), and rows left out are counted, not lost: the report's
`mix` table shows each entry's rows and share before and after, its repeats and rows left out.
The mixed rows are shuffled with the seed, so repeats do not sit together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunewright.config.data_source import DataSource, source_path
from tunewright.data.records import Record


@dataclass
class Mixed:
    records: list[Record]
    table: list[dict[str, Any]] | None = None  # per entry; None when nothing was mixed
    repeats: int = 0  # extra copies written by up-sampling
    left_out: int = 0  # checked training rows not used (max_rows, down-sampling)
    notes: list[str] = field(default_factory=list)


def mixing_asked(items: Sequence[str | DataSource]) -> bool:
    return any(isinstance(i, DataSource) and (i.weight or i.max_rows) for i in items)


def mix(
    items: Sequence[str | DataSource],
    train: list[Record],
    eval: list[Record],
    entry_of: Callable[[Record], int],
    seed: int,
) -> Mixed:
    """The training rows mixed as `items` (data.train) ask; `entry_of(record)` is the index of
    the entry a record was read from."""
    if not mixing_asked(items):
        return Mixed(train)
    rng = np.random.default_rng(seed)
    entries = [i if isinstance(i, DataSource) else DataSource(path=i) for i in items]
    rows: list[list[Record]] = [[] for _ in entries]
    for record in train:
        rows[entry_of(record)].append(record)
    before = [len(r) for r in rows]
    left_out = [0] * len(entries)
    for k, entry in enumerate(entries):
        if entry.max_rows is not None and len(rows[k]) > entry.max_rows:
            left_out[k] = len(rows[k]) - entry.max_rows
            rows[k] = _choose(rows[k], entry.max_rows, rng)
    repeats = [0] * len(entries)
    targets = _targets(entries, [len(r) for r in rows])
    notes = []
    for k, target in targets.items():
        have = len(rows[k])
        if have == 0:
            notes.append(
                f"data.train[{k}] ({source_path(items[k])}) has weight {entries[k].weight} "
                "but no training rows left after the checks: it adds nothing"
            )
        elif target < have:
            left_out[k] += have - target
            rows[k] = _choose(rows[k], target, rng)
        elif target > have:
            repeats[k] = target - have
            copies = rows[k] * (target // have)
            rows[k] = copies + _choose(rows[k], target % have, rng)
    mixed = [record for entry_rows in rows for record in entry_rows]
    mixed = [mixed[i] for i in rng.permutation(len(mixed))]
    eval_rows = [0] * len(entries)
    for record in eval:
        eval_rows[entry_of(record)] += 1
    total_before, total_after = sum(before), len(mixed)
    table = [
        {
            "source": source_path(items[k]),
            "weight": entry.weight,
            "max_rows": entry.max_rows,
            "rows_before": before[k],
            "share_before": _share(before[k], total_before),
            "rows_after": len(rows[k]),
            "share_after": _share(len(rows[k]), total_after),
            "repeats": repeats[k],
            "left_out": left_out[k],
            "eval_rows": eval_rows[k],
        }
        for k, entry in enumerate(entries)
    ]
    return Mixed(mixed, table, sum(repeats), sum(left_out), notes)


def _targets(entries: list[DataSource], counts: list[int]) -> dict[int, int]:
    """Rows each weighted entry should give (see the module doc)."""
    weighted = {k: e.weight for k, e in enumerate(entries) if e.weight}
    if not weighted:
        return {}
    if len(weighted) == len(entries):
        total = float(sum(counts))
        scale = sum(weighted.values())
        return {k: round(w / scale * total) for k, w in weighted.items()}
    rest = sum(n for k, n in enumerate(counts) if k not in weighted)
    total = rest / (1 - sum(weighted.values()))
    return {k: round(w * total) for k, w in weighted.items()}


def _choose(records: list[Record], count: int, rng: np.random.Generator) -> list[Record]:
    """A random choice of `count` records, in their order."""
    chosen = np.sort(rng.choice(len(records), count, replace=False)) if count else []
    return [records[i] for i in chosen]


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0
