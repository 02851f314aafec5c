"""Mixing training sources with `weight` and `max_rows` on data.train entries."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from tunewright.config.data_source import DataSource
from tunewright.config.schema import DataSection
from tunewright.data.mixing import mix
from tunewright.data.records import make_record


def rows(file: str, count: int) -> list[dict]:
    return [
        make_record(
            [{"role": "user", "content": f"{file} {n}"}, {"role": "assistant", "content": "ok"}],
            "instruction",
            file,
            n + 1,
        )
        for n in range(count)
    ]


def entry_of(record: dict) -> int:
    return {"task.jsonl": 0, "replay.jsonl": 1}[record["source"]["file"]]


def test_without_weights_or_max_rows_nothing_changes():
    train = rows("task.jsonl", 5)
    mixed = mix(["task.jsonl"], train, [], entry_of, seed=0)
    assert mixed.records is train and mixed.table is None


def test_a_weighted_replay_source_fills_its_share_beside_an_unweighted_task():
    task, replay = rows("task.jsonl", 80), rows("replay.jsonl", 1000)
    items = ["task.jsonl", DataSource(path="replay.jsonl", weight=0.2)]
    mixed = mix(items, task + replay, rows("replay.jsonl", 3), entry_of, seed=0)
    counts = Counter(r["source"]["file"] for r in mixed.records)
    # The task keeps all 80 rows, once; replay is 20% of the whole: 20 of 100.
    assert counts == {"task.jsonl": 80, "replay.jsonl": 20}
    assert len({id(r) for r in mixed.records}) == 100  # down-sampling repeats nothing
    assert (mixed.repeats, mixed.left_out) == (0, 980)
    task_row, replay_row = mixed.table
    assert replay_row["rows_before"] == 1000 and replay_row["share_before"] == pytest.approx(0.9259)
    assert replay_row["rows_after"] == 20 and replay_row["share_after"] == 0.2
    assert (replay_row["left_out"], replay_row["eval_rows"]) == (980, 3)
    assert task_row["share_after"] == 0.8 and task_row["left_out"] == 0


def test_relative_weights_up_sample_a_small_source_with_spread_repeats():
    task, replay = rows("task.jsonl", 30), rows("replay.jsonl", 270)
    items = [
        DataSource(path="task.jsonl", weight=1),
        DataSource(path="replay.jsonl", weight=1),
    ]
    mixed = mix(items, task + replay, [], entry_of, seed=0)
    counts = Counter(r["source"]["file"] for r in mixed.records)
    assert counts == {"task.jsonl": 150, "replay.jsonl": 150}  # the size stays 300
    copies = Counter(id(r) for r in mixed.records if r["source"]["file"] == "task.jsonl")
    assert set(copies.values()) == {5}  # 150 = 5 whole copies of 30
    assert (mixed.repeats, mixed.left_out) == (120, 120)
    # Shuffled: the repeats do not sit together at the end.
    assert {r["source"]["file"] for r in mixed.records[:50]} == {"task.jsonl", "replay.jsonl"}


def test_max_rows_keeps_a_seeded_choice_and_counts_the_rest():
    replay = rows("replay.jsonl", 500)
    items = ["task.jsonl", DataSource(path="replay.jsonl", max_rows=50)]
    first = mix(items, rows("task.jsonl", 10) + replay, [], entry_of, seed=3)
    again = mix(items, rows("task.jsonl", 10) + replay, [], entry_of, seed=3)
    chosen = [r["source"]["line"] for r in first.records if r["source"]["file"] == "replay.jsonl"]
    assert len(chosen) == 50 and first.left_out == 450
    assert sorted(chosen) == sorted(
        r["source"]["line"] for r in again.records if r["source"]["file"] == "replay.jsonl"
    )


def test_a_weighted_source_left_empty_by_the_checks_is_said_not_guessed():
    items = [DataSource(path="task.jsonl", weight=0.5), "replay.jsonl"]
    mixed = mix(items, rows("replay.jsonl", 10), [], entry_of, seed=0)
    assert len(mixed.records) == 10
    assert "no training rows left" in mixed.notes[0]


def test_weights_and_max_rows_are_refused_where_they_mean_nothing():
    with pytest.raises(ValidationError, match=r"data\.eval\[0\]: weight and max_rows"):
        DataSection(train=["a.jsonl"], eval=[{"path": "b.jsonl", "weight": 0.5}])
    with pytest.raises(ValidationError, match=r"sum to 1\.2"):
        DataSection(
            train=[{"path": "a.jsonl", "weight": 0.7}, {"path": "b.jsonl", "weight": 0.5}, "c"]
        )
    with pytest.raises(ValidationError, match="greater than 0"):
        DataSection(train=[{"path": "a.jsonl", "max_rows": 0}])


def test_entries_with_weights_save_as_they_were_written():
    import warnings

    section = DataSection(train=["a.jsonl", {"path": "b.jsonl", "weight": 0.25, "max_rows": 9}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warned when it serialized an entry as a str
        dumped = section.model_dump(exclude_defaults=True)["train"]
    assert dumped == ["a.jsonl", {"path": "b.jsonl", "weight": 0.25, "max_rows": 9}]
    assert DataSection(train=dumped).train == section.train
