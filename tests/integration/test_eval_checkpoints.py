"""The checkpoint curve on the tiny model: every kept checkpoint and the final weights get a
point with intervals, the best is marked, and the report shows the curve."""

from __future__ import annotations

import json

from tests.integration.test_eval_stage import project


def test_checkpoint_curve_points_best_and_report(tmp_path, tiny_model_dir, run_cli):
    config = project(tmp_path, tiny_model_dir)
    overrides = [
        "train.method=lora",
        "train.learning_rate=0.01",
        "train.max_steps=12",
        "train.save_every=4",
        "train.keep_checkpoints=3",
    ]
    assert run_cli("train", str(config), *overrides)[0] == 0
    code, out, err = run_cli("eval", str(config), *overrides, "--checkpoints")
    assert code == 0, err
    results = json.loads((tmp_path / "runs/default/eval/metrics.json").read_text())
    curve = results["checkpoints"]
    names = [p["name"] for p in curve["points"]]
    steps = [p["step"] for p in curve["points"]]
    # checkpoint-12 holds the final weights, so it is the "final" point rather than a repeat
    assert names == ["checkpoint-4", "checkpoint-8", "final"] and steps == [4, 8, 12]
    for point in curve["points"]:
        assert point["value_ci_low"] <= point["value"] <= point["value_ci_high"]
        assert point["loss_ci_low"] <= point["loss"] <= point["loss_ci_high"]
    final = curve["points"][-1]
    exact = next(m for m in results["metrics"] if m["metric"] == curve["metric"])
    assert final["value"] == exact["tuned"]  # the same outputs as the main comparison
    # training lowers the eval loss over the run
    assert curve["points"][0]["loss"] > final["loss"]
    assert curve["best"]["name"] in names and curve["summary"] in " ".join(out.split())
    html = (tmp_path / "runs/default/eval/report.html").read_text()
    assert 'id="checkpoints"' in html and "★ best" in html and "image/png;base64" in html
