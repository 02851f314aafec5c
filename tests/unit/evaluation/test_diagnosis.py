"""Each diagnosis fires on a constructed run history, with its evidence and config change, and
stays quiet on a healthy run."""

from __future__ import annotations

from typing import Any

from tunewright.evaluation.diagnosis import diagnose

HYPER = {"epochs": 5, "max_steps": None}


def history(eval_losses: list[float], train_losses: list[float], every: int = 6) -> list[dict]:
    rows: list[dict[str, Any]] = [
        {"step": i + 1, "loss": loss} for i, loss in enumerate(train_losses)
    ]
    rows += [{"step": every * (i + 1), "eval_loss": loss} for i, loss in enumerate(eval_losses)]
    return rows


def results(deltas: list[float], tuned: str = "I am Quillon.", metric: str = "chrf") -> dict:
    examples = [
        {"reference": "I am Quillon, made by Larkspur Labs.", "tuned": tuned, "delta": d}
        for d in deltas
    ]
    return {"primary_metric": metric, "examples": examples}


# A healthy run: eval loss flattened, plenty of examples that agree, answers of the right length.
HEALTHY = results([30.0 + (i % 3) for i in range(60)])
FALLING_TRAIN = [3.0 - 0.05 * i for i in range(30)]


def kinds(history_rows: list[dict], eval_results: dict) -> dict[str, Any]:
    return {f.kind: f for f in diagnose(history_rows, eval_results, HYPER)}


def test_healthy_run_has_no_findings():
    assert kinds(history([2.0, 1.2, 1.0, 0.99, 0.99], FALLING_TRAIN), HEALTHY) == {}


def test_under_trained_when_eval_loss_is_still_falling():
    found = kinds(history([2.4, 2.0, 1.7, 1.4, 1.2], FALLING_TRAIN), HEALTHY)
    assert set(found) == {"under_trained"}
    assert "1.700 -> 1.400 -> 1.200 over the last 3 evaluations, steps 18-30" in (
        found["under_trained"].finding
    )
    assert found["under_trained"].suggestion == "Train longer: train.epochs: 10."


def test_over_trained_when_eval_loss_rises_while_train_loss_falls():
    found = kinds(history([2.0, 1.1, 1.0, 1.2, 1.4], FALLING_TRAIN), HEALTHY)
    assert set(found) == {"over_trained"}
    assert "lowest at step 18 (1.000) and rose to 1.400 by step 30" in found["over_trained"].finding
    assert "train.epochs: 3" in found["over_trained"].suggestion  # 5 epochs x 18 / 30 steps


def test_too_little_eval_data_names_the_detectable_difference_and_what_would_do():
    # 9 examples whose chrF changes spread widely: sd 27.95, so 2.8 x 27.95 / sqrt(9) = 26.1
    # is detectable, and 5 points need (2.8 x 27.95 / 5)^2 = 245 examples
    spread = results([-10.0, 40.0, 5.0, 60.0, 0.0, 35.0, -20.0, 50.0, 20.0])
    found = kinds(history([2.0, 1.2, 1.0, 1.0], FALLING_TRAIN), spread)
    assert set(found) == {"too_little_eval_data"}
    text = found["too_little_eval_data"].finding
    assert (
        "with 9 examples, only differences in chrf of 26.1 or more" in text
        and "(80% power)" in text
    )
    assert "one of 5 needs about 245 examples." in text
    assert "data.eval" in found["too_little_eval_data"].suggestion


def test_degenerate_outputs_empty_looping_and_runaway():
    empty = kinds([], results([30.0] * 60, tuned=" "))
    assert "60 of 60 answers are empty" in empty["degenerate_outputs"].finding
    loop = "I am Quillon I am Quillon I am Quillon I am Quillon I am Quillon I am Quillon"
    looping = kinds([], results([30.0] * 60, tuned=loop))["degenerate_outputs"].finding
    assert "60 repeat themselves in loops" in looping
    assert "run past 2x the references' median of 7 words" in looping
    assert (
        "chat_template"
        in kinds([], results([30.0] * 60, tuned=loop))["degenerate_outputs"].suggestion
    )


def test_too_little_eval_data_on_the_issues_nine_unchanged_exact_matches():
    # No spread to measure: half the scale (sd 0.5) is assumed, 2.8 x 0.5 / 3 = 46.7 points
    found = kinds([], results([0.0] * 9, metric="exact_match"))["too_little_eval_data"]
    assert "only differences in exact_match of 46.7 points or more" in found.finding
    assert "one of 10 points needs about 196 examples." in found.finding


def test_forgetting_when_a_suite_got_significantly_worse():
    row = {"metric": "builtin accuracy", "base": 0.788, "tuned": 0.645, "p_value": 1.3e-8}
    suites = [{"suite": "builtin", "metrics": [row | {"verdict": "worse"}]}]
    found = {
        f.kind: f
        for f in diagnose([], HEALTHY | {"suites": suites}, HYPER | {"learning_rate": 2e-4})
    }
    assert "builtin accuracy 78.8% -> 64.5% (p = 1.3e-08)" in found["forgetting"].finding
    assert "train.learning_rate: 0.0001" in found["forgetting"].suggestion
    same = [{"suite": "builtin", "metrics": [row | {"verdict": "no significant change"}]}]
    assert "forgetting" not in kinds([], HEALTHY | {"suites": same})


def test_too_little_eval_data_is_quiet_once_the_verdict_is_significant():
    few = results([0.0] * 9, metric="exact_match")
    assert "too_little_eval_data" in kinds([], few | {"verdict": "no significant change"})
    assert "too_little_eval_data" not in kinds([], few | {"verdict": "better"})


def test_not_under_trained_once_the_eval_loss_is_near_zero():
    # the quickstart's last evaluations: still falling 10% each, but every answer is right
    assert "under_trained" not in kinds(history([0.012, 0.011, 0.0099], FALLING_TRAIN), HEALTHY)
    assert "under_trained" in kinds(history([1.2, 1.1, 0.99], FALLING_TRAIN), HEALTHY)
