"""Writes the OpenAI example's dataset: support tickets triaged into one line of JSON, in OpenAI's
chat format (`{"messages": [...]}`), so the same file fine-tunes on OpenAI or locally.

    python examples/openai/make_data.py            # writes tickets.jsonl beside this file
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SYSTEM = "Triage the support ticket. Answer with one line of JSON."
NAMES = ["Maria", "Ahmed", "Chen", "Olga", "Tom", "Priya", "Lucas", "Aiko", "Kofi", "Elena"]
PRODUCTS = ["blender", "kettle", "desk lamp", "headset", "backpack", "coffee grinder", "router"]
# (category, priority, ticket text, summary); {product} and {days} are filled in per ticket.
ISSUES = [
    (
        "shipping",
        "normal",
        "My {product} still has not arrived after {days} days. Where is it?",
        "{product} not delivered after {days} days",
    ),
    (
        "damaged",
        "high",
        "The {product} came with a cracked casing and I cannot use it at all.",
        "{product} arrived cracked and unusable",
    ),
    (
        "billing",
        "high",
        "I was charged twice for the same {product} order, please refund one payment.",
        "double charge for {product} order",
    ),
    (
        "returns",
        "normal",
        "I would like to send the {product} back, it is smaller than the photos suggested.",
        "wants to return {product}, smaller than expected",
    ),
    (
        "technical",
        "normal",
        "Since the update {days} days ago my {product} keeps switching itself off.",
        "{product} switches off since update {days} days ago",
    ),
    (
        "account",
        "low",
        "How do I change the email address on my account? I ordered a {product} with it.",
        "asks how to change account email",
    ),
]


def make_rows(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    combos = [(i, p, n) for i in range(len(ISSUES)) for p in PRODUCTS for n in NAMES]
    rows = []
    for issue, product, name in rng.sample(combos, count):
        category, priority, ticket, summary = ISSUES[issue]
        days = rng.randint(2, 21)
        answer = {
            "category": category,
            "priority": priority,
            "customer": name,
            "summary": summary.format(product=product, days=days),
        }
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {
                        "role": "user",
                        "content": f"{ticket.format(product=product, days=days)} - {name}",
                    },
                    {"role": "assistant", "content": json.dumps(answer)},
                ]
            }
        )
    return rows


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("tickets.jsonl")
    rows = make_rows(60)
    target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} examples to {target}")


if __name__ == "__main__":
    main()
