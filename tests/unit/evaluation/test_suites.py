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
    # one batch of every row, and batches of 3 rows that split questions and mix lengths
    for found in (
        choice_scores(model, tokenizer, questions),
        choice_scores(model, tokenizer, questions, batch_rows=3),
    ):
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


def test_an_lm_eval_task_yaml_over_local_files(tmp_path, tiny_model_dir) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (tmp_path / "data").mkdir()
    _write(
        tmp_path / "data" / "test.jsonl",
        [
            {"q": "Sky colour?", "options": {"text": ["blue", "red"]}, "key": "blue"},
            {"q": "Grass colour?", "options": {"text": ["pink", "green"]}, "key": "green"},
        ],
    )
    (tmp_path / "colours.yaml").write_text(
        "task: colours\noutput_type: multiple_choice\ndataset_path: json\n"
        "dataset_kwargs:\n  data_files:\n    train: data/none.jsonl\n    test: data/test.jsonl\n"
        "test_split: test\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_choice: '{{options.text}}'\n"
        "doc_to_target: key\ntarget_delimiter: '  '\n"
    )
    questions = load_suite(tmp_path / "colours.yaml")
    assert [(q["context"], q["choices"], q["answer"]) for q in questions] == [
        ("Q: Sky colour?\nA:", ["blue", "red"], 0),
        ("Q: Grass colour?\nA:", ["pink", "green"], 1),
    ]
    # scored with the task's own context and delimiter
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    import torch

    context = tokenizer("Q: Sky colour?\nA:", add_special_tokens=False).input_ids
    cont = tokenizer("  red", add_special_tokens=False).input_ids
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([context + cont])).logits[0], -1)
    want = sum(float(logprobs[len(context) + i - 1, t]) for i, t in enumerate(cont)) / 5
    assert choice_scores(model, tokenizer, questions)[0][1] == pytest.approx(want, abs=1e-4)

    (tmp_path / "data" / "rows.csv").write_text("sentence,label\nIt rains.,1\nIt is dry.,0\n")
    (tmp_path / "csv.yml").write_text(
        "dataset_path: csv\ndataset_kwargs: {data_files: data/rows.csv}\n"
        "doc_to_text: sentence\ndoc_to_choice: ['dry', 'wet']\ndoc_to_target: label\n"
    )
    assert [(q["context"], q["answer"]) for q in load_suite(tmp_path / "csv.yml")] == [
        ("It rains.", 1),
        ("It is dry.", 0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("output_type: generate_until\n", "multiple_choice tasks only"),
        ("dataset_path: hellaswag\n", "'hellaswag' is not a local file"),
        ("doc_to_text: !function utils.doc_to_text\n", "needs lm-eval's Python hooks"),
        ("doc_to_target: '{{missing}}'\n", "row 1: template '{{missing}}': 'missing' is undefined"),
    ],
)
def test_lm_eval_tasks_it_cannot_read_are_refused_by_name(tmp_path, text, message) -> None:
    _write(tmp_path / "d.jsonl", [{"q": "x", "c": ["a", "b"], "t": 0}])
    base = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": "d.jsonl"},
        "doc_to_text": "q",
        "doc_to_choice": "c",
        "doc_to_target": "t",
    }

    override = {text.split(":")[0]}
    lines = [f"{k}: {json.dumps(v)}" for k, v in base.items() if k not in override] + [
        text.rstrip()
    ]
    (tmp_path / "task.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(TunewrightError) as caught:
        load_suite(tmp_path / "task.yaml")
    assert message in str(caught.value) and "task.yaml" in str(caught.value)
