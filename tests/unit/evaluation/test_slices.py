"""Slices on constructed predictions: an overall gain that hides a slice gone worse is reported
as such, Holm's correction, the confusion matrix, and the report sections."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.evaluation.test_report import _Page

from tunewright.config import Config, load_config
from tunewright.errors import TunewrightError
from tunewright.evaluation.report import render_html, render_markdown
from tunewright.evaluation.slices import (
    MIN_SLICE_EXAMPLES,
    compare_slices,
    confusion_matrix,
    slice_results,
)
from tunewright.evaluation.stats import holm

# 40 "a" and 40 "b" the tuned model now gets right, 20 "c" it now gets wrong (base had them).
COUNTS = {"a": 40, "b": 40, "c": 20}


def _record(i: int, label: str) -> dict[str, Any]:
    prompt = "Classify: " + "word " * (1 + i % 9)
    return {
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": label},
        ],
        "task": "classification",
        "label": label,
        "source": {"file": f"data/part{i % 2}.jsonl", "line": i + 1},
    }


def _constructed() -> tuple[list[dict], dict[str, list[str]], list[str]]:
    labels = [label for label, n in COUNTS.items() for _ in range(n)]
    records = [_record(i, label) for i, label in enumerate(labels)]
    base = ["b" if label == "a" else "a" if label == "b" else "c" for label in labels]
    tuned = [label if label != "c" else "a" for label in labels]
    return records, {"base": base, "tuned": tuned}, labels


def _config(**eval_options: Any) -> Config:
    config = load_config(None)
    config.eval.bootstrap_samples = 300
    for key, value in eval_options.items():
        setattr(config.eval, key, value)
    return config


def test_holm_adjusts_step_down_in_input_order() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_a_slice_gone_worse_is_reported_even_when_overall_is_better() -> None:
    records, outputs, references = _constructed()
    slices = compare_slices(records, outputs, references, "accuracy", _config())
    by_name = {f"{r['dimension']}={r['slice']}": r for r in slices["rows"]}
    assert by_name["label=a"]["verdict"] == "better"
    assert by_name["label=c"]["verdict"] == "worse"
    assert (by_name["label=c"]["base"], by_name["label=c"]["tuned"]) == (1.0, 0.0)
    assert slices["worse"] == ["label=c"]
    # both source files hold c's, but their gains outweigh it
    assert {by_name[f"source=data/part{k}.jsonl"]["n_examples"] for k in (0, 1)} == {50}
    assert sum(r["n_examples"] for r in slices["rows"] if r["dimension"] == "prompt_length") == 100
    for row in slices["rows"]:
        assert row["p_holm"] >= row["p_value"]


def test_holm_can_turn_a_lone_significant_slice_into_no_change() -> None:
    # 6 of 6 examples flip right -> wrong in one slice: exact McNemar p = 2 / 2**6 = 0.031 on
    # its own; with 7 slices tested Holm multiplies the smallest p by 7.
    records = [_record(i, "x" if i < 6 else "y") for i in range(42)]
    for i, record in enumerate(records):
        record["source"]["file"] = f"f{i // 6}.jsonl"
    references = [r["label"] for r in records]
    outputs = {"base": list(references), "tuned": ["z"] * 6 + references[6:]}
    slices = compare_slices(records, outputs, references, "accuracy", _config(slices=["source"]))
    first = next(r for r in slices["rows"] if r["slice"] == "f0.jsonl")
    assert first["p_value"] == pytest.approx(2 / 2**6)
    assert first["p_holm"] == pytest.approx(7 * 2 / 2**6)
    assert first["verdict"] == "no significant change"
    assert slices["worse"] == []


def test_small_slices_are_counted_not_tested_and_fields_can_be_dotted() -> None:
    records, outputs, references = _constructed()
    records[0]["source"]["file"] = "data/lonely.jsonl"
    slices = compare_slices(
        records, outputs, references, "accuracy", _config(slices=["source.file"])
    )
    assert {r["slice"] for r in slices["rows"]} == {"data/part0.jsonl", "data/part1.jsonl"}
    assert slices["too_small"] == 1 and MIN_SLICE_EXAMPLES > 1


def test_an_unknown_slice_field_names_the_key_and_the_fields() -> None:
    records, outputs, references = _constructed()
    with pytest.raises(TunewrightError, match=r"eval\.slices: no eval record has a field 'topic'"):
        compare_slices(records, outputs, references, "accuracy", _config(slices=["topic"]))


def test_confusion_matrix_counts_answers_outside_the_labels() -> None:
    matrix = confusion_matrix(["a", "b", "maybe", "b"], ["a", "a", "b", "b"])
    assert matrix["columns"] == ["a", "b", "(other)"]
    assert matrix["counts"] == [[1, 1, 0], [0, 1, 1]]
    # a classifier head's labels count even when the eval set lacks them
    head = confusion_matrix(["neg"], ["pos"], known=["neg", "pos"])
    assert head["labels"] == ["neg", "pos"] and head["counts"] == [[0, 0, 0], [1, 0, 0]]


def test_reports_show_slices_the_warning_and_confusion_matrices() -> None:
    records, outputs, references = _constructed()
    found = slice_results(records, outputs, references, "accuracy", ["accuracy"], _config())
    assert found["confusion"]["tuned"]["counts"] == [[40, 0, 0, 0], [0, 40, 0, 0], [20, 0, 0, 0]]
    results = {
        "run": "sliced",
        "primary_metric": "accuracy",
        "verdict": "better",
        "metrics": [],
        **found,
    }
    markdown = render_markdown(results)
    assert "Yet significantly worse on 1 slice: label=c." in markdown
    assert "| label=c | 20 | 100.0% | 0.0% |" in markdown
    assert "| **c** | 20 | 0 | 0 | 0 |" in markdown
    page = _Page(render_html(results))
    assert "Yet significantly worse on 1 slice: label=c." in " ".join(page.text)
    header, *rows = page.tables["slices"]
    assert all(len(row) == len(header) == 9 for row in rows)
    assert rows[2][:4] == ["label=c", "20", "100.0%", "0.0%"] and rows[2][-1] == "✗ worse"
    assert page.tables["confusion-tuned"][3] == ["c", "20", "0", "0", "0"]
