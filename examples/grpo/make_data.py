"""Writes sums.jsonl: 200 additions of two numbers from 2 to 49, asked for the number alone,
with the sum as the reference answer. Deterministic: run it again and the file is identical.

    python examples/grpo/make_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ASKS = [
    "What is {a} + {b}? Reply with the number only.",
    "Add {a} and {b}. Answer with just the number.",
    "{a} plus {b} equals what? Give only the number.",
    "Compute {a} + {b}. Output the number and nothing else.",
]


def rows(n: int = 200, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    found = []
    while len(found) < n:
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        found.append({"instruction": rng.choice(ASKS).format(a=a, b=b), "output": str(a + b)})
    return found


def main() -> None:
    target = Path(__file__).with_name("sums.jsonl")
    target.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    print(f"{target}: {len(rows())} rows")


if __name__ == "__main__":
    main()
