"""Evaluation end to end on the tiny model: a run that learned shows a significant improvement,
a run with zero training steps shows no significant change, and the gate follows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.judge_stub import judge_app
from tests.support.projects import make_project
from tests.support.serving import ServerThread

from tunewright.config import load_config
from tunewright.evaluation.stage import EvalGateError, evaluate_run
from tunewright.training.stage import train_model

ANSWER = "The answer is blue."


def project(folder: Path, model: Path) -> Path:
    rows = [
        {"instruction": f"Question {i}: name a colour, please.", "output": ANSWER}
        for i in range(80)
    ]
    return make_project(
        folder,
        model=model,
        rows=rows,
        data={"eval_fraction": 0.25, "min_words": 1},
        train={
            "method": "full",
            "batch_size": 8,
            "grad_accum": 1,
            "learning_rate": 0.003,
            "save_every": 1000,
            "eval_every": 1000,
        },
        eval={"max_new_tokens": 12, "bootstrap_samples": 300, "suites": []},
    )


def test_learned_task_is_significantly_better(tmp_path, tiny_model_dir, run_cli, monkeypatch):
    config = project(tmp_path, tiny_model_dir)
    assert run_cli("train", str(config), "train.max_steps=40")[0] == 0
    # a suite where the learned answer is always the wrong choice: forgetting made visible.
    # The right ones differ from it by one word, so the untrained base has no length or
    # wording preference between them and gets some right.
    colours = ["red", "green", "purple", "orange", "yellow", "black", "white", "pink", "brown"]
    suite = tmp_path / "general.jsonl"
    suite.write_text(
        "".join(
            json.dumps(
                {
                    "question": f"Question {i}: which colour is meant?",
                    "choices": [f"The answer is {c}.", ANSWER],
                    "answer": 0,
                }
            )
            + "\n"
            for i, c in enumerate(colours * 4)
        )
    )
    monkeypatch.setenv("TW_JUDGE_KEY", "judge-key")
    app, received = judge_app("judge-key")
    with ServerThread(app) as judge:
        code, out, err = run_cli(
            "eval",
            str(config),
            "--require-improvement",
            f"eval.judge={{base_url: '{judge.url}/v1', model: rule-judge, "
            "api_key_env: TW_JUDGE_KEY, price_per_1k_tokens: 0.002}",
            f"eval.suites=[{suite}]",
        )
    assert code == 0, err
    assert "judge: 40 requests to rule-judge (0 cached)" in " ".join(err.split())
    assert len(received) == 40 and (tmp_path / "runs/default/eval/judge_cache.jsonl").is_file()
    results = json.loads((tmp_path / "runs" / "default" / "eval" / "metrics.json").read_text())
    exact = next(m for m in results["metrics"] if m["metric"] == "exact_match")
    assert exact["base"] == 0.0 and exact["tuned"] >= 0.9
    assert exact["ci_low"] > 0 and exact["verdict"] == "better" and exact["test"] == "mcnemar"
    loss = next(m for m in results["metrics"] if m["metric"] == "loss")
    assert loss["tuned"] < loss["base"] and loss["verdict"] == "better"
    assert results["verdict"] == "better" and results["n_examples"] == 20
    html = (tmp_path / "runs" / "default" / "eval" / "report.html").read_text()
    assert ANSWER in html and "exact_match" in html
    assert (tmp_path / "runs" / "default" / "eval" / "report.md").is_file()
    assert "verdict on exact_match: better" in " ".join(out.split())
    judged = next(m for m in results["metrics"] if m["metric"] == "judge_win_rate")
    assert judged["verdict"] == "better" and results["judge"]["wins"] >= 18
    assert "Judge rule-judge: tuned won" in html and "judge_win_rate" in html
    (general,) = results["suites"]
    assert general["n_questions"] == 36 and general["chance"] == 0.5
    row = general["metrics"][0]
    assert row["metric"] == "general accuracy" and row["tuned"] == 0.0, row
    assert row["verdict"] == "worse" and 'id="suites"' in html, row


def test_zero_steps_is_no_significant_change_and_gate_fails(tmp_path, tiny_model_dir):
    config = load_config(
        project(tmp_path, tiny_model_dir), ["train.method=lora", "train.max_steps=0"]
    )
    train_model(config)
    results = evaluate_run(config)
    for row in results["metrics"]:
        assert row["diff"] == pytest.approx(0.0, abs=1e-6), row
        assert row["verdict"] == "no significant change"
    assert results["verdict"] == "no significant change"
    config.eval.require_improvement = True
    with pytest.raises(EvalGateError, match="not significantly better"):
        evaluate_run(config)


def test_eval_on_another_file_and_missing_training(tmp_path, tiny_model_dir, run_cli):
    config = project(tmp_path, tiny_model_dir)
    code, _, err = run_cli("eval", str(config))
    assert code == 1 and "Run `tunewright train" in err
    assert run_cli("train", str(config), "train.max_steps=2", "train.method=lora")[0] == 0
    other = tmp_path / "other.jsonl"
    other.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"Say hi {i}"},
                        {"role": "assistant", "content": "hi"},
                    ]
                }
            )
            + "\n"
            for i in range(6)
        )
        # Two questions without an answer: nothing to compare, counted rather than dropped.
        + (json.dumps({"messages": [{"role": "user", "content": "Hi?"}]}) + "\n") * 2
    )
    code, _, err = run_cli("eval", str(config), "--data", str(other), "eval.max_examples=5")
    assert code == 0, err
    assert "evaluating 5 of 8 examples; left out: 2 without an assistant answer" in err
    results = json.loads((tmp_path / "runs" / "default" / "eval" / "metrics.json").read_text())
    assert results["n_examples"] == 5
    assert results["selection"] == {
        "available": 8,
        "without_reference": 2,
        "over_max_examples": 1,
        "evaluated": 5,
    }
    assert results["examples"][0]["source"].startswith(str(other))
