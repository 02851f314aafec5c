"""Token lengths without tokenizing every row: exact where a row could be over the limit, a
sample for the statistics, and every row when the byte bound does not hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunewright.chat import token_lengths
from tunewright.data import lengths
from tunewright.data.records import make_record


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def records(count: int) -> list[dict]:
    """Answers of growing length, some in another script (more bytes per character)."""
    out = []
    for n in range(count):
        answer = " ".join(["word"] * (n % 40 + 1)) + (" 日本語のテキスト" * (n % 3))
        messages = [{"role": "user", "content": f"Question {n}?"}]
        messages.append({"role": "assistant", "content": answer})
        out.append(make_record(messages, "instruction", "f.jsonl", n + 1))
    pair = make_record(
        [{"role": "user", "content": "Pick one."}], "preference", "f.jsonl", count + 1
    )
    pair.update(chosen="a " * 50, rejected="b")
    return [*out, pair]


def exact(tokenizer: Any, rows: list[dict]) -> list[list[int]]:
    return [token_lengths(tokenizer, [conv for _, conv in lengths.sides(r)]) for r in rows]


def test_small_datasets_are_measured_exactly(tokenizer: Any) -> None:
    rows = records(30)
    measured = lengths.measure(tokenizer, rows, limit=20, seed=0)
    assert measured.sampled is None
    assert measured.lengths == exact(tokenizer, rows)


def test_big_datasets_measure_every_row_that_could_be_over_the_limit(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lengths, "SAMPLE", 10)
    rows = records(120)
    truth = exact(tokenizer, rows)
    limit = sorted(max(sides) for sides in truth)[60]  # half the rows are over it
    measured = lengths.measure(tokenizer, rows, limit=limit, seed=0)
    assert measured.sampled is not None and sum(measured.sampled) == 10
    skipped = 0
    for index, (got, want) in enumerate(zip(measured.lengths, truth, strict=True)):
        for side, n in zip(got, want, strict=True):  # a pair has two sides
            if measured.sampled[index] or n > limit:
                assert side == n  # the sample and every side over the limit: exact
            elif side is None:  # not tokenized: its bound was within the limit
                skipped += 1
            else:
                assert side == n
    assert skipped >= 10  # the shortest rows were not tokenized
    assert sum(max(w) > limit for w in truth) == sum(
        (measured.longest(i) or 0) > limit for i in range(len(rows))
    )


def test_a_tokenizer_the_bound_does_not_hold_for_gets_every_row_measured(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lengths, "SAMPLE", 10)
    monkeypatch.setattr(lengths, "SLACK", -10_000)  # every bound now undercounts
    rows = records(60)
    measured = lengths.measure(tokenizer, rows, limit=10_000, seed=0)
    assert measured.sampled is None
    assert measured.lengths == exact(tokenizer, rows)
