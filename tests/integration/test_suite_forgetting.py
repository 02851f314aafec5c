"""The built-in suite on the real embedded model: the base scores well above chance, and a
deliberately damaged model (a LoRA trained to answer "A" to everything, at a rate far too high)
is reported significantly worse, as forgetting."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.evaluation.stage import evaluate_run
from tunewright.training.stage import train_model

pytestmark = pytest.mark.slow


def test_a_model_that_answers_a_to_everything_is_reported_worse(tmp_path: Path) -> None:
    rows = [
        {"instruction": f"Question {i}: which of A, B, C or D is right?", "output": "A"}
        for i in range(48)
    ]
    config_path = make_project(
        tmp_path,
        model="smollm2-135m-instruct",
        rows=rows,
        data={"min_words": 1},
        train={"method": "lora", "max_steps": 8, "batch_size": 8, "learning_rate": 5e-3},
        eval={"max_examples": 4, "max_new_tokens": 2, "suites": ["builtin"], "slices": []},
    )
    config = load_config(config_path)
    train_model(config)
    results = evaluate_run(config)
    (suite,) = results["suites"]
    row = suite["metrics"][0]
    assert suite["suite"] == "builtin" and suite["n_questions"] >= 250
    assert row["base"] >= 0.6, row  # well above chance (25%), or forgetting could not show
    assert row["tuned"] < row["base"] and row["ci_high"] < 0, row
    assert row["verdict"] == "worse" and row["test"] == "mcnemar", row
