"""Pairs and feedback through the data stage and its commands, on the tiny model's tokenizer:
rejections with file:line and reason, the split by prompt, render, export, and training's
refusal of feedback unless `data.feedback_as_sft` asks for it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.data.prepare import FeedbackDataError, ensure_prepared, prepare_data

RELAXED = {"max_invalid_fraction": 1.0, "max_seq_len": 160}


def question(n: int) -> str:
    return f"Question {n}: what is {n} plus {n + 1}, and how do you check it?"


def good_pairs(prompts: int, per_prompt: int) -> list[dict]:
    """TRL rows: `per_prompt` pairs for each prompt, prompts interleaved as files have them."""
    return [
        {
            "prompt": question(n),
            "chosen": f"It is {2 * n + 1}; adding {n} back to {n + 1} checks it ({k}).",
            "rejected": f"Perhaps {n * k + 7}, but I did not check.",
        }
        for k in range(per_prompt)
        for n in range(prompts)
    ]


def planted_pairs() -> list[dict]:
    rows = good_pairs(prompts=10, per_prompt=3)  # lines 1-30
    rows += [
        {"prompt": question(50), "chosen": "Same answer.", "rejected": "Same  answer."},  # 31
        {"prompt": question(51), "chosen": "It is 103, checked.", "rejected": ""},  # 32
        {"prompt": "", "chosen": "An answer to nothing.", "rejected": "Another one."},  # 33
        {"prompt": question(53), "chosen": "Short.", "rejected": "word " * 200},  # 34
        {  # 35: a sharegpt pair in a TRL file
            "conversations": [{"from": "human", "value": question(54)}],
            "chosen": {"from": "gpt", "value": "It is 109."},
            "rejected": {"from": "gpt", "value": "No idea."},
        },
    ]
    return rows


@pytest.fixture
def pairs_project(tmp_path, tiny_model_dir) -> Path:
    return make_project(
        tmp_path, model=tiny_model_dir, rows=planted_pairs(), data=RELAXED, train=None
    )


def test_pair_problems_are_rejected_at_their_lines(pairs_project, run_cli):
    code, out, err = run_cli("data", "validate", str(pairs_project), "--json")
    assert code == 0, err
    report = json.loads(out)
    train = pairs_project.parent / "train.jsonl"
    checks = report["checks"]
    assert checks["identical_pair"]["examples"] == [f"{train}:31"]
    assert checks["empty_output"]["examples"] == [f"{train}:32"]
    assert checks["missing_prompt"]["examples"] == [f"{train}:33"]
    assert checks["pair_too_long"]["examples"] == [f"{train}:34"]
    assert checks["pair_too_long"]["reasons"][0].startswith(
        "pair over data.max_seq_len 160: rejected side "
    )
    assert "chosen side" not in checks["pair_too_long"]["reasons"][0]
    assert checks["mixed_shapes"]["examples"] == [f"{train}:35"]
    assert checks["mixed_shapes"]["reasons"] == [
        f"mixed shapes: this row is preference/sharegpt (columns ['chosen', 'conversations', "
        f"'rejected']), but {train}:1 made this file preference/trl; a file holds one shape"
    ]
    assert report["files"][0]["format"] == "preference/trl"
    assert report["rows"] == {"total": 35, "train": 27, "eval": 3, "rejected": 5}
    assert report["tasks"] == {"preference": 30}


def test_prepare_splits_pairs_by_prompt(pairs_project):
    analysis = prepare_data(load_config(pairs_project))
    prompts = [
        {r["messages"][0]["content"] for r in side} for side in (analysis.train, analysis.eval)
    ]
    assert prompts[1] and not prompts[0] & prompts[1]
    assert len(analysis.eval) == 3  # one prompt's three pairs
    train = pairs_project.parent / "train.jsonl"
    # Unreadable shapes are rejected while loading, the checks' findings by row, then lengths.
    assert [(r["source"], r["check"]) for r in analysis.rejected] == [
        (f"{train}:35", "mixed_shapes"),
        (f"{train}:31", "identical_pair"),
        (f"{train}:32", "empty_output"),
        (f"{train}:33", "missing_prompt"),
        (f"{train}:34", "pair_too_long"),
    ]
    assert all(r["reason"] and r["row"] for r in analysis.rejected)
    assert analysis.report["leaks"]["count"] == 0


def test_render_shows_both_sides_of_a_pair(pairs_project, run_cli):
    code, out, err = run_cli("data", "render", str(pairs_project), "-i", "1")
    assert code == 0, err
    train = pairs_project.parent / "train.jsonl"
    assert f"train[1] {train}:2 chosen" in out and f"train[1] {train}:2 rejected" in out
    assert out.count("with loss") == 2
    assert "It is 3; adding 1 back to 2 checks it (0)." in out
    assert "Perhaps 7, but I did not check." in out


def test_export_pairs_to_openai_dpo_and_trl(pairs_project, run_cli):
    assert run_cli("data", "prepare", str(pairs_project))[0] == 0
    folder = pairs_project.parent
    for target in ("openai-dpo", "trl"):
        code, out, err = run_cli(
            "data", "export", str(pairs_project), "--to", target, "--out", str(folder / target)
        )
        assert code == 0, err
        assert "train: 27 rows" in out and "eval: 3 rows" in out
    dpo = json.loads((folder / "openai-dpo" / "train.jsonl").read_text().splitlines()[0])
    assert set(dpo) == {"input", "preferred_output", "non_preferred_output"}
    assert dpo["preferred_output"][0]["role"] == "assistant"
    trl = json.loads((folder / "trl" / "eval.jsonl").read_text().splitlines()[0])
    assert set(trl) == {"prompt", "chosen", "rejected"}
    assert trl["prompt"][0]["role"] == "user"
    code, out, err = run_cli(
        "data", "export", str(pairs_project), "--to", "alpaca", "--out", str(folder / "alpaca")
    )
    assert code == 0 and "27 rows cannot be held by alpaca" in out
    skipped = json.loads((folder / "alpaca" / "train.skipped.jsonl").read_text().splitlines()[0])
    assert "export pairs with openai-dpo or trl" in skipped["reason"]


# ---------------------------------------------------------------------------------------------
# Binary feedback


def feedback_rows() -> list[dict]:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Write a subject line for sale number {n}."},
                {
                    "role": "assistant",
                    "content": f"Sale {n}: a third off the garden shop this week"
                    if n % 2
                    else f"!!! SALE {n} !!! CLICK NOW !!! FREE !!!",
                },
            ],
            "label": bool(n % 2),
        }
        for n in range(20)
    ]
    rows.append({**rows[1], "label": "maybe"})  # 21: not a boolean
    rows.append({"messages": rows[2]["messages"]})  # 22: plain chat among feedback
    return rows


@pytest.fixture
def feedback_project(tmp_path, tiny_model_dir) -> Path:
    return make_project(
        tmp_path, model=tiny_model_dir, rows=feedback_rows(), data=RELAXED, train=None
    )


def test_feedback_rows_are_checked_and_labelled(feedback_project):
    analysis = prepare_data(load_config(feedback_project))
    train = feedback_project.parent / "train.jsonl"
    assert [(r["source"], r["check"]) for r in analysis.rejected] == [
        (f"{train}:21", "bad_row"),
        (f"{train}:22", "mixed_shapes"),
    ]
    assert analysis.rejected[0]["reason"].startswith(
        "field 'label' must be true or false (desirable or not), got 'maybe'; "
    )
    assert "this row is openai" in analysis.rejected[1]["reason"]
    assert analysis.report["tasks"] == {"feedback": 20}
    assert analysis.report["labels"]["counts"] == {"False": 10, "True": 10}
    # Stratified by label: eval holds one of each.
    assert sorted(r["label"] for r in analysis.eval) == [False, True]


def test_training_refuses_feedback_unless_asked(feedback_project):
    console = Console(file=io.StringIO())
    config = load_config(feedback_project)
    with pytest.raises(FeedbackDataError, match="20 prepared examples are binary feedback") as exc:
        ensure_prepared(config, console)
    assert "data.feedback_as_sft: true" in (exc.value.hint or "")
    opted_in = load_config(feedback_project, ["data.feedback_as_sft=true"])
    assert ensure_prepared(opted_in, console).name == "data"
    on_prompt = load_config(
        feedback_project, ["data.feedback_as_sft=true", "train.train_on_prompt=true"]
    )
    with pytest.raises(FeedbackDataError, match="train_on_prompt"):
        ensure_prepared(on_prompt, console)


def test_sft_on_feedback_learns_only_the_desirable_answers(feedback_project, tiny_model_dir):
    # Today's SFT features, unchanged, read the prepared records' weights.
    from tunewright.models import load_tokenizer
    from tunewright.training.features import causal_features

    analysis = prepare_data(load_config(feedback_project, ["data.feedback_as_sft=true"]))
    records = analysis.train + analysis.eval
    features = causal_features(load_tokenizer(tiny_model_dir), records, 160, False)
    loss_tokens = [sum(t != -100 for t in f["labels"]) for f in features]
    assert all((n > 0) == r["label"] for n, r in zip(loss_tokens, records, strict=True))


def test_render_and_export_feedback(feedback_project, run_cli):
    code, out, err = run_cli("data", "render", str(feedback_project), "-i", "0", "-i", "1")
    assert code == 0, err
    assert "label: undesirable (weight 0: SFT never trains on this answer)" in out
    assert "label: desirable" in out
    assert run_cli("data", "prepare", str(feedback_project))[0] == 0
    folder = feedback_project.parent / "kto"
    code, out, err = run_cli(
        "data", "export", str(feedback_project), "--to", "trl", "--out", str(folder)
    )
    assert code == 0, err
    rows = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    assert all(set(r) == {"prompt", "completion", "label"} for r in rows)
    assert {r["label"] for r in rows} == {True, False}
    assert all("weight" not in r["completion"][0] for r in rows)
