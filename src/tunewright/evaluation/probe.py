"""The general-skills probe: short questions with one clear answer, run on base and tuned
model to catch forgetting. An answer counts as right when it contains the reference (case and
punctuation ignored); these are skills a small instruct model mostly has, so a drop after
fine-tuning is a warning sign that the tuning overwrote them.
"""

from __future__ import annotations

import re

PROBES: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is 2 + 2?", "4"),
    ("What is 10 minus 3?", "7"),
    ("What is 5 times 6?", "30"),
    ("What is half of 100?", "50"),
    ("How many days are in a week?", "7"),
    ("How many legs does a spider have?", "8"),
    ("How many continents are there on Earth?", "7"),
    ("What color is the sky on a clear day?", "blue"),
    ("What color are ripe bananas?", "yellow"),
    ("What color is grass?", "green"),
    ("What is the opposite of hot?", "cold"),
    ("What is the opposite of up?", "down"),
    ("What is the opposite of big?", "small"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("What do bees make?", "honey"),
    ("What is frozen water called?", "ice"),
    ("What gas do plants take in from the air?", "carbon dioxide"),
    ("What is the chemical symbol for water?", "H2O"),
    ("Which animal is known as the king of the jungle?", "lion"),
    ("What is the first letter of the English alphabet?", "A"),
    ("Which month comes after January?", "February"),
    ("What day comes after Monday?", "Tuesday"),
    ("How many hours are in a day?", "24"),
    ("What language is mainly spoken in Brazil?", "Portuguese"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("What is the boiling point of water in degrees Celsius?", "100"),
    ("What is the freezing point of water in degrees Celsius?", "0"),
    ("Which ocean is the largest?", "Pacific"),
    ("What is the tallest animal in the world?", "giraffe"),
)
NOTE = (
    "General-skills probe: short general questions the base model mostly answers; a drop "
    "after fine-tuning suggests forgetting. An answer counts when it contains the reference."
)


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def contains_answer(output: str, reference: str) -> bool:
    """Whole-word containment, so '4' does not match '14' and 'A' needs a word of its own."""
    return _words(reference) in _words(output)
