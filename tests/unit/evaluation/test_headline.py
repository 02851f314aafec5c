"""The headline never hides a significant change in the other metrics, and the report says
which metric the verdict reads and why."""

from __future__ import annotations

from typing import Any

from tunewright.evaluation.report import render_markdown, summary_sentence


def row(metric: str, base: float, tuned: float, verdict: str, **extra: Any) -> dict[str, Any]:
    return {
        "metric": metric, "base": base, "tuned": tuned, "diff": tuned - base, "ci_low": -0.1,
        "ci_high": 0.1, "test": "bootstrap", "p_value": 0.5, "verdict": verdict, **extra,
    }  # fmt: skip


# The issue's run: paraphrased references never match exactly, everything else got better.
ISSUE = {
    "run": "identity",
    "primary_metric": "exact_match",
    "verdict": "same",
    "metrics": [
        row("exact_match", 0.0, 0.0, "same", test="mcnemar"),
        row("chrf", 8.5, 35.9, "better"),
        row("rougeL", 0.02, 0.65, "better"),
        row("loss", 2.34, 0.94, "better", higher_is_better=False),
    ],
}


def test_no_significant_change_names_the_metrics_that_did_change():
    sentence = summary_sentence(ISSUE)
    assert sentence.startswith("No significant change: exact_match 0.0% → 0.0%")
    assert sentence.endswith("; but chrf, rougeL and loss are significantly better")


def test_a_better_headline_names_a_metric_that_got_worse():
    results = {
        **ISSUE,
        "primary_metric": "chrf",
        "verdict": "better",
        "metrics": [ISSUE["metrics"][1], row("exact_match", 0.5, 0.2, "worse", test="mcnemar")],
    }
    assert summary_sentence(results).endswith("; but exact_match is significantly worse")


def test_agreeing_metrics_add_nothing():
    results = {**ISSUE, "primary_metric": "chrf", "verdict": "better"}
    assert "but" not in summary_sentence(results)


def test_report_says_which_metric_and_why_and_lists_the_diagnosis():
    reason = "auto: free-form references (median 16 words, 9 of 9 distinct: ...)"
    finding = {"kind": "under_trained", "finding": "Under-trained: x.", "suggestion": "Do y."}
    md = render_markdown({**ISSUE, "primary_reason": reason, "diagnosis": [finding]})
    assert f"Verdict on exact_match ({reason})." in md
    assert "Under-trained: x. Do y." in md
