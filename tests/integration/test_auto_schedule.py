"""`auto` epochs on the tiny model: the trainer runs the optimizer steps the schedule promised."""

from __future__ import annotations

import json

from tests.support.projects import addition_rows, make_project

from tunewright.training.defaults import MIN_STEPS


def test_the_tiny_model_trains_the_steps_the_rule_promised(tmp_path, tiny_model_dir, run_cli):
    train = {"batch_size": 4, "grad_accum": 1, "learning_rate": 0.01, "save_every": 1000}
    config = make_project(
        tmp_path, model=tiny_model_dir, rows=addition_rows(20), train={**train, "eval_every": 1000}
    )
    code, _, err = run_cli("train", str(config))
    assert code == 0, err
    folder = tmp_path / "runs" / "default" / "train"
    hyper = json.loads((folder / "manifest.json").read_text())["hyperparameters"]
    # 18 train rows in batches of 4: 5 steps per epoch, 5 epochs would be 25 steps
    assert hyper["epochs"] == -(-MIN_STEPS // 5)
    assert f"epochs {hyper['epochs']} (auto: raised from 5 to reach {MIN_STEPS}" in err
    steps = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").open()]
    assert max(steps) == hyper["epochs"] * 5 >= MIN_STEPS
