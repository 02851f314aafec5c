"""Deterministic train/eval split that keeps groups whole (duplicates, and the pairs or judged
answers of one prompt) and labels proportional.

Only numpy's seeded generator decides the order, so a seed gives the same split on every machine
and under every PYTHONHASHSEED.
"""

from __future__ import annotations

import numpy as np

from tunewright.data.records import Record


def split_records(
    records: list[Record],
    eval_fraction: float,
    seed: int,
    groups: list[int] | None = None,
    stratify: bool | None = None,
) -> tuple[list[int], list[int]]:
    """(train indices, eval indices), each ascending, together a partition of range(n).

    `groups` gives a group id per record (from checks.near_duplicate_groups); a group goes to
    one side whole, so the eval size may miss round(eval_fraction * n) by part of a group.
    `stratify` (None: when every record has a label) splits each label separately, so each
    label's share of eval follows its share of the data. With two or more records eval holds at
    least one, unless a single group holds them all (breaking it would leak into eval)."""
    n = len(records)
    if n < 2:
        return list(range(n)), []
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    groups = list(range(n)) if groups is None else groups
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group ids for {n} records")
    if stratify is None:
        stratify = all(r.get("label") is not None for r in records)
    members = _group_members(groups)
    strata = _strata(records, members) if stratify else {"": list(members)}
    total = min(max(round(eval_fraction * n), 1), n - 1)
    rng = np.random.default_rng(seed)
    quotas = _apportion(total, {key: _size(g, members) for key, g in strata.items()})
    chosen: list[int] = []
    for key in sorted(strata):
        shuffled = [strata[key][i] for i in rng.permutation(len(strata[key]))]
        chosen.extend(_fill(shuffled, members, quotas[key]))
    if _size(chosen, members) == n:  # an overshooting group took the last train example
        chosen.pop()
    if not chosen and len(members) > 1:
        # Every group was too big for its quota; the smallest one still gives eval an example.
        chosen = [min(members, key=lambda g: (len(members[g]), g))]
    eval_set = {i for g in chosen for i in members[g]}
    train = [i for i in range(n) if i not in eval_set]
    return train, sorted(eval_set)


def _group_members(groups: list[int]) -> dict[int, list[int]]:
    """Group id -> record indices, groups in order of first appearance."""
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    return members


def _strata(records: list[Record], members: dict[int, list[int]]) -> dict[str, list[int]]:
    """Label -> group ids. A group whose records disagree on the label joins its most common one
    (ties: the label that sorts first); groups must stay whole."""
    strata: dict[str, list[int]] = {}
    for group, indices in members.items():
        labels = [str(records[i].get("label")) for i in indices]
        label = min(set(labels), key=lambda x: (-labels.count(x), x))
        strata.setdefault(label, []).append(group)
    return strata


def _size(group_ids: list[int], members: dict[int, list[int]]) -> int:
    return sum(len(members[g]) for g in group_ids)


def _apportion(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """Split `total` eval examples over strata in proportion to their sizes, by largest
    remainder, so the quotas add up to exactly `total`."""
    whole = sum(sizes.values())
    exact = {key: total * size / whole for key, size in sizes.items()}
    quotas = {key: int(share) for key, share in exact.items()}
    by_remainder = sorted(exact, key=lambda key: (-(exact[key] - quotas[key]), key))
    for key in by_remainder[: total - sum(quotas.values())]:
        quotas[key] += 1
    return quotas


def _fill(group_ids: list[int], members: dict[int, list[int]], quota: int) -> list[int]:
    """Groups, taken in the given order, whose sizes come as close to `quota` as they can: a
    group is taken when it brings the total nearer the quota, so a group at most twice the
    remaining gap can overshoot it."""
    chosen: list[int] = []
    filled = 0
    for group in group_ids:
        if filled >= quota:
            break
        size = len(members[group])
        if abs(quota - filled - size) < quota - filled:
            chosen.append(group)
            filled += size
    return chosen


def join_groups(*groupings: list[int]) -> list[int]:
    """One group id per record, joining records that share a group in any of `groupings`
    (each a group id per record that is an index of one of its members, as
    checks.near_duplicate_groups and checks.prompt_groups give). The id is the joined group's
    smallest index, so it is stable for a given input order."""
    parent = list(range(len(groupings[0]) if groupings else 0))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees shallow
            i = parent[i]
        return i

    for groups in groupings:
        for i, group in enumerate(groups):
            a, b = root(i), root(group)
            parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(len(parent))]
