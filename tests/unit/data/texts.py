"""Random texts over made-up words, shared by the duplicate and check tests."""

from __future__ import annotations

import random

# 48 made-up words: random 3-word runs over them rarely repeat within a text by chance.
WORDS = [f"{stem}{end}" for stem in ("ka", "lo", "mi", "ra", "te", "su") for end in "nrlstmpx"]


def words(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(WORDS) for _ in range(count)]


def text(count: int, seed: int) -> str:
    return " ".join(words(count, seed))
