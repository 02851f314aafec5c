"""Multiple-choice suites: reading suite files (every problem named by file and line), and
log-likelihood choice on the tiny model checked against a slow one-sequence-at-a-time score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewright.errors import TunewrightError
from tunewright.evaluation.suites import choice_scores, choose, context_text, load_suite


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_answers_by_index_or_text_and_problems_by_line(tmp_path) -> None:
    good = _write(
        tmp_path / "ok.jsonl",
        [
            {"question": "2 + 2?", "choices": ["3", "4"], "answer": 1},
            {"question": "Sky?", "choices": ["blue", "green"], "answer": "blue"},
        ],
    )
    assert [q["answer"] for q in load_suite(good)] == [1, 0]
    bad = _write(
        tmp_path / "bad.jsonl",
        [
            {"question": "2 + 2?", "choices": ["3", "4"], "answer": 1},
            {"question": "x", "choices": ["only"], "answer": 0},
            {"question": "y", "choices": ["a", "b"], "answer": 2},
            {"question": "z", "choices": ["a", "b"], "answer": "c"},
            {"choices": ["a", "b"], "answer": 0},
        ],
    )
    with pytest.raises(TunewrightError) as caught:
        load_suite(bad)
    message = str(caught.value)
    assert "4 unreadable questions" in message
    for line, reason in [
        (2, "at least two"),
        (3, "index below 2"),
        (4, "'c' is not one of the choices"),
        (5, "'question'"),
    ]:
        assert f"bad.jsonl:{line}: " in message and reason in message


def _slow_scores(model, tokenizer, item) -> list[float]:
    """Each choice alone, unpadded: summed log-prob of its tokens per byte."""
    import torch

    context = tokenizer(context_text(item["question"]), add_special_tokens=False).input_ids
    scores = []
    for choice in item["choices"]:
        cont = tokenizer(f" {choice}", add_special_tokens=False).input_ids
        ids = torch.tensor([context + cont])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        total = sum(float(logprobs[len(context) + i - 1, t]) for i, t in enumerate(cont))
        scores.append(total / len(f" {choice}".encode()))
    return scores


def test_choice_matches_a_one_sequence_at_a_time_score(tiny_model_dir) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    questions = [
        {"question": f"Which word is number {i}?", "choices": choices, "answer": 0}
        for i, choices in enumerate(
            [["apple", "a much longer banana split"], ["x", "y", "zebra crossing"], ["cat", "dog"]]
        )
    ]
    expected = [_slow_scores(model, tokenizer, q) for q in questions]
    found = choice_scores(model, tokenizer, questions)
    for got, want in zip(found, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    assert choose(model, tokenizer, questions) == [
        max(range(len(s)), key=s.__getitem__) for s in expected
    ]


def test_the_builtin_suite_is_large_varied_and_not_guessable_by_position() -> None:
    from collections import Counter

    from tunewright.evaluation.suites import BUILTIN_PATH

    questions = load_suite(BUILTIN_PATH)
    assert len(questions) >= 250
    assert len({q["question"] for q in questions}) == len(questions)
    for q in questions:
        assert len(q["choices"]) == 4 and len(set(q["choices"])) == 4, q
    areas = Counter(json.loads(line)["area"] for line in BUILTIN_PATH.read_text().splitlines())
    assert set(areas) == {"geography", "science", "language", "common sense", "arithmetic"}
    # a model that always answers the same position ("A" to everything) stays near chance
    positions = Counter(q["answer"] for q in questions)
    assert max(positions.values()) / len(questions) < 0.32
