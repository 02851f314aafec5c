"""Writes people.jsonl: 200 sentences about a person, each asked for as a JSON object with
keys name, age and city, with that object as the reference answer. Deterministic: run it again
and the file is identical.

    python examples/grpo/make_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = [
    "Alice", "Omar", "Lena", "Kenji", "Maria", "Tom", "Priya", "Jonas", "Amara", "Luis",
    "Mei", "Sven", "Fatima", "Noah", "Ines", "Ravi", "Chloe", "Tariq", "Elena", "Kofi",
]  # fmt: skip
CITIES = [
    "Paris", "Lagos", "Oslo", "Lima", "Seoul", "Cairo", "Quito", "Perth", "Lisbon", "Dakar",
    "Hanoi", "Vienna", "Bogota", "Tunis", "Riga", "Osaka", "Accra", "Porto", "Lyon", "Bern",
]  # fmt: skip
SENTENCES = [
    "{name} is {age} years old and lives in {city}.",
    "{name}, aged {age}, has a flat in {city}.",
    "Living in {city}, {name} turned {age} this year.",
    "{name} moved to {city} and is now {age}.",
]
ASK = "Extract the name, age and city as a JSON object with keys name, age and city: {sentence}"


def rows(n: int = 200, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[str] = set()
    found = []
    while len(found) < n:
        person = {"name": rng.choice(NAMES), "age": rng.randint(18, 80), "city": rng.choice(CITIES)}
        sentence = rng.choice(SENTENCES).format(**person)
        if sentence in seen:
            continue
        seen.add(sentence)
        found.append({"instruction": ASK.format(sentence=sentence), "output": json.dumps(person)})
    return found


def main() -> None:
    target = Path(__file__).with_name("people.jsonl")
    target.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    print(f"{target}: {len(rows())} rows")


if __name__ == "__main__":
    main()
