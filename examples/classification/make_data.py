"""Writes reviews.csv: short product reviews labelled positive / negative / neutral.

python examples/classification/make_data.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ITEMS = [
    "kettle",
    "lamp",
    "backpack",
    "phone case",
    "desk chair",
    "blender",
    "umbrella",
    "headphones",
    "notebook",
    "water bottle",
    "keyboard",
    "toaster",
]
OPENERS = {
    "positive": [
        "I love this {item}.",
        "Great {item}, works perfectly.",
        "This {item} is superb.",
        "Really happy with the {item}.",
        "Excellent {item} for the price.",
    ],
    "negative": [
        "This {item} broke after a week.",
        "Terrible {item}, do not buy.",
        "The {item} stopped working.",
        "Very disappointed with this {item}.",
        "Awful {item}, returned it.",
    ],
    "neutral": [
        "The {item} arrived on Tuesday.",
        "It is a {item}.",
        "The {item} is blue.",
        "I bought the {item} last month.",
        "The {item} came in a box.",
    ],
}
TAILS = [
    "",
    " Shipping took three days.",
    " My sister has one too.",
    " Ordered online.",
    " It came with a manual.",
]


def main() -> None:
    rng = random.Random(0)
    rows, seen = [], set()
    while len(rows) < 150:
        label = rng.choice(sorted(OPENERS))
        text = rng.choice(OPENERS[label]).format(item=rng.choice(ITEMS)) + rng.choice(TAILS)
        if text not in seen:
            seen.add(text)
            rows.append((text, label))
    target = Path(__file__).parent / "reviews.csv"
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {target}")


if __name__ == "__main__":
    main()
