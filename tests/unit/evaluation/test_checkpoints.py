"""The checkpoint curve's summary and plot on constructed curves."""

from __future__ import annotations

import base64

from tunewright.evaluation.checkpoints import FINAL, curve_png, curve_summary


def _curve(best: str, verdict: str | None) -> dict:
    points = [
        {
            "step": s,
            "name": n,
            "value": v,
            "value_ci_low": v - 0.1,
            "value_ci_high": v + 0.1,
            "loss": loss,
            "loss_ci_low": loss - 0.2,
            "loss_ci_high": loss + 0.2,
        }
        for s, n, v, loss in [
            (10, "checkpoint-10", 0.5, 2.0),
            (20, "checkpoint-20", 0.9, 1.0),
            (30, FINAL, 0.6, 1.4),
        ]
    ]
    versus = (
        None
        if verdict is None
        else {"diff": -0.3, "ci_low": -0.45, "ci_high": -0.15, "p_value": 0.002, "verdict": verdict}
    )
    step = next(p["step"] for p in points if p["name"] == best)
    return {
        "metric": "exact_match",
        "points": points,
        "best": {"name": best, "step": step},
        "final_vs_best": versus,
        "hurt": verdict == "worse",
    }


def test_summary_says_whether_training_past_the_best_hurt() -> None:
    hurt = curve_summary(_curve("checkpoint-20", "worse"))
    assert "training past step 20 hurt" in hurt and "train.max_steps: 20" in hurt
    assert "-0.3, 95% CI -0.45 to -0.15, p = 0.002" in hurt
    same = curve_summary(_curve("checkpoint-20", "no significant change"))
    assert "not significantly worse" in same and "did not measurably hurt" in same
    final = curve_summary(_curve(FINAL, None))
    assert final.startswith("The final weights (step 30) score best on exact_match of 3 points")


def test_curve_png_is_a_png() -> None:
    png = base64.b64decode(curve_png(_curve("checkpoint-20", "worse")))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
