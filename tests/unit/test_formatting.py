"""tunewright.formatting is the one place metric numbers are formatted: the eval report and the
model card show the same strings for the same row."""

import html
import json
from pathlib import Path

from tunewright.config import Config
from tunewright.evaluation.report import render_html, render_markdown
from tunewright.exporting.card import model_card
from tunewright.formatting import format_ci, format_diff, format_p, format_value

ROWS = [
    {"metric": "exact_match", "base": 0.05, "tuned": 0.85, "diff": 0.8, "ci_low": 0.66,
     "ci_high": 0.92, "test": "mcnemar", "p_value": 1.2e-08, "verdict": "better"},
    {"metric": "loss", "base": 2.31, "tuned": 0.42, "diff": -1.89, "ci_low": -2.0,
     "ci_high": -1.7, "test": "wilcoxon", "p_value": 0.0341, "verdict": "better"},
    {"metric": "chrf", "base": 41.234, "tuned": 44.5, "diff": 3.266, "ci_low": -1.5,
     "ci_high": 8.0, "test": "bootstrap", "p_value": 0.5, "verdict": "same"},
]  # fmt: skip
RESULTS = {"n_examples": 10, "primary_metric": "exact_match", "verdict": "better", "metrics": ROWS}


def _card(tmp_path: Path) -> str:
    """The model card of a run folder whose eval evaluated the weights being exported."""
    config = Config.model_validate({"model": {"name": "smollm2-135m-instruct"}})
    config.base_dir = tmp_path
    eval_dir = config.run_dir / "eval"
    eval_dir.mkdir(parents=True)
    (eval_dir / "metrics.json").write_text(json.dumps(RESULTS))
    (eval_dir / "manifest.json").write_text(json.dumps({"inputs": {"adapter": "abc"}}))
    return model_card(config, trained={"adapter": "abc"}, dtype="bf16", merge=None, where="x")


def test_card_and_report_show_the_same_numbers_for_the_same_row(tmp_path):
    card, page, md = _card(tmp_path), render_html(RESULTS), render_markdown(RESULTS)
    for row in ROWS:
        metric, ci = row["metric"], format_ci(row["metric"], row["ci_low"], row["ci_high"])
        base, tuned = format_value(metric, row["base"]), format_value(metric, row["tuned"])
        diff, p = format_diff(metric, row["diff"]), format_p(row["p_value"])
        assert f"| {metric} | {base} | {tuned} | {diff} ({ci}) | {p} |" in card
        assert f"<td>{base}</td><td>{tuned}</td>" in page
        assert f"<td>{ci}</td>" in page and f"<td>{html.escape(p)}</td>" in page
        assert f"| {base} | {tuned} |" in md and f"| {ci} |" in md
    assert "| +80.0 (+66.0 to +92.0) |" in card and "<td>+66.0 to +92.0</td>" in page
    assert "| -1.89 (-2.00 to -1.70) |" in card and "<td>-2.00 to -1.70</td>" in page
