"""Evaluation reports people read: `report.html` (one self-contained file) and `report.md`.

Both answer "did fine-tuning help?" at the top, then give the evidence: the metric table with
confidence intervals and tests, the benchmark suites (forgetting check), the examples that
changed most, and the run details. Both are rendered from the `results` dict the evaluation stage
builds (the same data it writes to metrics.json); optional keys may be missing.

The layout and wording live in templates/report.html (+ report.css) and templates/report.md; this
module reads the results into display values (numbers through tunewright.formatting) and renders.
The HTML opens from disk with no network: inline CSS, no scripts, the loss curve inlined as a
base64 PNG. It is autoescaped, because prompts are arbitrary and may contain markup such as
`<script>`.
"""

from __future__ import annotations

import base64
import functools
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from tunewright.evaluation.selection import left_out_note
from tunewright.files import atomic_write_text
from tunewright.formatting import (
    MISSING,
    as_number,
    format_ci,
    format_diff,
    format_p,
    format_significant,
    format_value,
    metric_kind,
)

HTML_NAME = "report.html"
MD_NAME = "report.md"

# Caps that keep report.html a few hundred KB even for thousands of examples.
HTML_MAX_EXAMPLES = 50  # wins + losses + rest together
HTML_PER_SECTION = 10  # biggest wins, and biggest losses
HTML_MAX_CHARS = 4000  # per text field
# report.md is meant for a PR comment, so it carries only a taste of the examples.
MD_PER_SECTION = 3
MD_MAX_CHARS = 800

TEST_NAMES = {
    "mcnemar": "McNemar",
    "wilcoxon": "Wilcoxon",
    "bootstrap": "paired bootstrap",
    "paired_bootstrap": "paired bootstrap",
    "sign": "sign test",
    "ttest": "paired t-test",
    "paired_t": "paired t-test",
}

Results = Mapping[str, Any]
Row = Mapping[str, Any]


def write_reports(results: Results, out_dir: Path, loss_png: Path | None = None) -> list[str]:
    """Write report.html and report.md into `out_dir` (each atomically); return their names.

    `loss_png` is the training loss curve; it is embedded when given and present on disk."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / HTML_NAME, render_html(results, loss_png))
    atomic_write_text(out_dir / MD_NAME, render_markdown(results))
    return [HTML_NAME, MD_NAME]


def render_html(results: Results, loss_png: Path | None = None) -> str:
    examples = list(results.get("examples") or [])
    wins, losses, rest, omitted = _pick_examples(examples, HTML_PER_SECTION, HTML_MAX_EXAMPLES)
    return _template(HTML_NAME).render(
        report=_report_view(results),
        sections=_example_sections(results, wins=wins, losses=losses, rest=rest),
        omitted=omitted,
        loss_png_base64=_png_base64(loss_png),
        max_chars=HTML_MAX_CHARS,
    )


def render_markdown(results: Results) -> str:
    examples = list(results.get("examples") or [])
    wins, losses, _, _ = _pick_examples(examples, MD_PER_SECTION, 2 * MD_PER_SECTION)
    return _template(MD_NAME).render(
        report=_report_view(results),
        sections=_example_sections(results, wins=wins, losses=losses),
        max_chars=MD_MAX_CHARS,
        html_name=HTML_NAME,
    )


def summary_sentence(results: Results) -> str:
    """The one-line answer, e.g. "Fine-tuning helped: exact_match 5.0% → 85.0% (+80.0 points,
    95% CI +66.0 to +92.0, McNemar p < 0.001)". Plain text (not escaped)."""
    verdict = _overall_verdict(results)
    lead = {
        "better": "Fine-tuning helped",
        "worse": "Fine-tuning made it worse",
    }.get(verdict, "No significant change")
    row = _primary_row(results)
    if row is None:
        return f"{lead}."
    return f"{lead}: {_change_phrase(row)}{_disagreeing(results, row, verdict)}"


def _disagreeing(results: Results, primary: Row, verdict: str | None) -> str:
    """e.g. "; but chrf, rougeL and loss are significantly better": the other metrics whose
    significant verdict differs from the headline's, so the headline never hides them."""
    others = [r for r in _metric_rows(results) if r is not primary]
    parts = []
    for side in ("better", "worse"):
        names = [str(r.get("metric")) for r in others if r.get("verdict") == side != verdict]
        if names:
            listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            verb = "is" if len(names) == 1 else "are"
            parts.append(f"{listed} {verb} significantly {side}")
    return f"; but {' and '.join(parts)}" if parts else ""


# ---------------------------------------------------------------------------------------------
# Display values, shared by both formats. Numbers come from tunewright.formatting, the one source
# the model card uses too.


def _report_view(results: Results) -> dict[str, Any]:
    """Everything the templates show except the examples, as display values."""
    models = results.get("models") or {}
    verdict = _overall_verdict(results)
    return {
        "run": results.get("run") or "run",
        "base": models.get("base", "?"),
        "tuned": models.get("tuned", "?"),
        "n_examples": results.get("n_examples", len(results.get("examples") or [])),
        "verdict": verdict,
        "verdict_class": _verdict_class(verdict),
        "summary": summary_sentence(results),
        "primary_line": _primary_line(results),
        "diagnosis": [f"{d['finding']} {d['suggestion']}" for d in results.get("diagnosis") or []],
        "forgetting_line": _forgetting_line(results),
        "warnings": results.get("warnings") or [],
        "metrics": [_metric_cells(row) for row in _metric_rows(results)],
        "primary_metric": str(results.get("primary_metric") or "score"),
        "details": _details(results),
        "judge_line": _judge_line(results.get("judge")),
        "checkpoints": _checkpoints_view(results.get("checkpoints")),
        "suites": [
            {
                "suite": suite.get("suite"),
                "n_questions": suite.get("n_questions"),
                "chance": format_value("accuracy", suite.get("chance")),
                "metrics": [_metric_cells(row) for row in _metric_rows(suite)],
            }
            for suite in results.get("suites") or []
        ],
        "slices": _slices_view(results.get("slices")),
        "slice_line": _slice_line(results),
        "confusion": [
            {"side": side, **matrix} for side, matrix in (results.get("confusion") or {}).items()
        ],
    }


def _checkpoints_view(curve: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint curve's summary, plot and one row per point."""
    if not curve or not curve.get("points"):
        return None
    from tunewright.evaluation.checkpoints import curve_png

    metric = str(curve.get("metric"))
    rows = [
        {
            "name": p.get("name"),
            "step": p.get("step"),
            "best": p.get("name") == (curve.get("best") or {}).get("name"),
            "value": format_value(metric, p.get("value")) if "value" in p else MISSING,
            "ci": format_ci(metric, p.get("value_ci_low"), p.get("value_ci_high"))
            if "value" in p
            else MISSING,
            "loss": format_value("loss", p.get("loss")),
            "loss_ci": format_ci("loss", p.get("loss_ci_low"), p.get("loss_ci_high")),
        }
        for p in curve["points"]
    ]
    return {
        "metric": metric,
        "summary": curve.get("summary"),
        "rows": rows,
        "png": curve_png(curve),
    }


def _judge_line(judge: Mapping[str, Any] | None) -> str | None:
    """Win/tie/loss counts and how often the judge agreed with itself across answer orders."""
    if not judge:
        return None
    return (
        f"Judge {judge.get('model')}: tuned won {judge.get('wins')}, tied {judge.get('ties')}, "
        f"lost {judge.get('losses')} of {judge.get('n_examples')} (a verdict counts only when "
        f"both answer orders agree; both orders agreed on {judge.get('consistency', 0):.0%})."
    )


def _slices_view(slices: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not slices or not slices.get("rows"):
        return None
    rows = [
        {
            **_metric_cells(row),
            "dimension": row.get("dimension"),
            "slice": row.get("slice"),
            "n_examples": row.get("n_examples"),
            "p": format_p(row.get("p_holm")),
        }
        for row in slices["rows"]
    ]
    return {
        "metric": slices.get("metric"),
        "rows": rows,
        "too_small": slices.get("too_small"),
        "min_examples": slices.get("min_examples"),
    }


def _slice_line(results: Results) -> str | None:
    """Slices that got significantly worse, said at the top even when the verdict is better."""
    worse = (results.get("slices") or {}).get("worse") or []
    if not worse:
        return None
    lead = "Yet significantly worse" if _overall_verdict(results) == "better" else "Worse"
    return f"{lead} on {len(worse)} slice{'s' if len(worse) > 1 else ''}: {', '.join(worse)}."


def _metric_cells(row: Row) -> dict[str, Any]:
    """One metric table row: the metric name and its formatted cells."""
    metric = str(row.get("metric", "?"))
    verdict = row.get("verdict")
    return {
        "metric": metric,
        "lower_is_better": row.get("higher_is_better") is False,
        "base": format_value(metric, row.get("base")),
        "tuned": format_value(metric, row.get("tuned")),
        "diff": format_diff(metric, _diff(row), unit=True),
        "ci": format_ci(metric, row.get("ci_low"), row.get("ci_high")),
        "test": _test_name(row.get("test")),
        "p": format_p(row.get("p_value")),
        "verdict_class": _verdict_class(verdict),
        "verdict_label": _verdict_label(verdict),
    }


def _example_sections(results: Results, **chosen: list[Row]) -> dict[str, list[dict[str, Any]]]:
    """Section name -> example views; empty when the results have no examples at all."""
    if not results.get("examples"):
        return {}
    metric = str(results.get("primary_metric") or "score")
    return {name: [_example_view(e, metric) for e in rows] for name, rows in chosen.items()}


def _example_view(example: Row, metric: str) -> dict[str, Any]:
    """One example's header values (scored by `metric`) and its raw, unclipped texts."""
    delta = _delta(example)
    return {
        "index": example.get("index", "?"),
        "data_index": example.get("index", ""),
        "source": example.get("source"),
        "score_base": format_value(metric, example.get("score_base")),
        "score_tuned": format_value(metric, example.get("score_tuned")),
        "delta": format_diff(metric, delta, unit=True),
        "change": "better" if (delta or 0) > 0 else "worse" if (delta or 0) < 0 else "same",
        **{key: example.get(key) for key in ("prompt", "reference", "base", "tuned")},
    }


def _png_base64(loss_png: Path | None) -> str | None:
    if loss_png is None or not Path(loss_png).is_file():
        return None
    return base64.b64encode(Path(loss_png).read_bytes()).decode("ascii")


def _test_name(test: Any) -> str:
    if not test:
        return MISSING
    return TEST_NAMES.get(str(test).lower(), str(test))


def _verdict_label(verdict: Any) -> str:
    # Symbols as well as words and colour, so the verdict survives greyscale and colour blindness.
    return {"better": "✓ better", "worse": "✗ worse"}.get(str(verdict), "≈ no significant change")


def _verdict_class(verdict: Any) -> str:
    return str(verdict) if verdict in ("better", "worse") else "same"


def _diff(row: Row) -> Any:
    if row.get("diff") is not None:
        return row["diff"]
    base, tuned = as_number(row.get("base")), as_number(row.get("tuned"))
    return None if base is None or tuned is None else tuned - base


def _change_phrase(row: Row) -> str:
    """`exact_match 5.0% → 85.0% (+80.0 points, 95% CI +66.0 to +92.0, McNemar p < 0.001)`."""
    metric = str(row.get("metric", "metric"))
    diff = format_diff(metric, _diff(row))
    details = [f"{diff} points" if metric_kind(metric) == "rate" and diff != MISSING else diff]
    if as_number(row.get("ci_low")) is not None and as_number(row.get("ci_high")) is not None:
        details.append(f"95% CI {format_ci(metric, row['ci_low'], row['ci_high'])}")
    p = format_p(row.get("p_value"))
    if p != MISSING:
        test = f"{_test_name(row['test'])} " if row.get("test") else ""
        details.append(f"{test}p {p if p.startswith('<') else '= ' + p}")
    base, tuned = format_value(metric, row.get("base")), format_value(metric, row.get("tuned"))
    return f"{metric} {base} → {tuned} ({', '.join(details)})"


# ---------------------------------------------------------------------------------------------
# Reading the results dict.


def _metric_rows(section: Mapping[str, Any] | None) -> list[Row]:
    return list((section or {}).get("metrics") or [])


def _primary_row(results: Results) -> Row | None:
    rows = _metric_rows(results)
    wanted = results.get("primary_metric")
    return next((r for r in rows if r.get("metric") == wanted), rows[0] if rows else None)


def _overall_verdict(results: Results) -> str | None:
    if results.get("verdict"):
        return str(results["verdict"])
    row = _primary_row(results)
    return None if row is None else row.get("verdict")


def _primary_line(results: Results) -> str | None:
    """Which metric the verdict reads and why, e.g. "Verdict on chrf (auto: free-form ...)"."""
    reason = results.get("primary_reason")
    return f"Verdict on {results.get('primary_metric')} ({reason})." if reason else None


def _forgetting_line(results: Results) -> str | None:
    """One line on forgetting, from the benchmark suites, when they ran."""
    rows = [row for suite in results.get("suites") or [] for row in _metric_rows(suite)]
    if not rows:
        return None
    worse = [str(r.get("metric")) for r in rows if r.get("verdict") == "worse"]
    if worse:
        return f"Benchmark suites: worse on {', '.join(worse)} (possible forgetting)."
    return "Benchmark suites: no significant drop (no sign of forgetting)."


def _delta(example: Row) -> float | None:
    delta = as_number(example.get("delta"))
    if delta is not None:
        return delta
    base, tuned = as_number(example.get("score_base")), as_number(example.get("score_tuned"))
    return None if base is None or tuned is None else tuned - base


def _pick_examples(
    examples: Sequence[Row], per_section: int, total: int
) -> tuple[list[Row], list[Row], list[Row], int]:
    """(biggest wins, biggest losses, the rest in original order, how many are left out)."""
    scored = [e for e in examples if _delta(e) is not None]
    # sorted() is stable, so equal deltas keep their evaluation order.
    wins = sorted((e for e in scored if (_delta(e) or 0) > 0), key=lambda e: -(_delta(e) or 0))
    losses = sorted((e for e in scored if (_delta(e) or 0) < 0), key=lambda e: _delta(e) or 0)
    wins, losses = wins[:per_section], losses[:per_section]
    taken = {id(e) for e in (*wins, *losses)}
    room = max(0, total - len(wins) - len(losses))
    rest = [e for e in examples if id(e) not in taken][:room]
    omitted = len(examples) - len(wins) - len(losses) - len(rest)
    return wins, losses, rest, omitted


def _clip(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters)"


def _pairs(mapping: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items())


def _train_text(train: Mapping[str, Any]) -> str:
    known = {
        "steps": lambda v: f"{v} steps",
        "final_loss": lambda v: (
            f"final loss {format_significant(v) if as_number(v) is not None else v}"
        ),
        "tokens_per_s": lambda v: f"{v:,.0f} tokens/s" if as_number(v) is not None else f"{v}",
    }
    parts = [known[k](v) if k in known else f"{k}={v}" for k, v in train.items()]
    return ", ".join(parts)


def _details(results: Results) -> list[tuple[str, str]]:
    """(label, plain text) run details, skipping what the results do not have."""
    models = results.get("models") or {}
    rows = [
        ("Run", results.get("run")),
        ("Task", results.get("task")),
        ("Held-out examples", results.get("n_examples")),
        ("Left out", left_out_note(results["selection"]) if results.get("selection") else None),
        ("Base model", models.get("base")),
        ("Tuned model", models.get("tuned")),
        ("Decoding", _pairs(results.get("decoding")) or None),
        ("Training", _train_text(results["train"]) if results.get("train") else None),
    ]
    return [(label, str(value)) for label, value in rows if value not in (None, "")]


# ---------------------------------------------------------------------------------------------
# Templates


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tunewright.evaluation", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        finalize=_escape_like_stdlib,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        clip=_clip,
        html=_html_escape,
        oneline=lambda text: " ".join(str(text).split()),
        md_text=_md_text,
        md_cell=_md_cell,
        md_code=_md_code,
        md_block=_md_block,
    )
    return env


def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


def _html_escape(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@jinja2.pass_eval_context
def _escape_like_stdlib(eval_ctx: jinja2.nodes.EvalContext, value: Any) -> Any:
    """In autoescaped templates, escape each value as `html.escape` does (`&#x27;`, `&quot;`,
    None as nothing), so reports keep the exact bytes they had; markupsafe's own escaping (which
    writes `&#39;`) then leaves the result alone. Markup (a macro's output) passes unchanged."""
    if not eval_ctx.autoescape or hasattr(value, "__html__"):
        return value
    return Markup(_html_escape(value))


def _md_text(text: Any) -> str:
    """Inline user text: one line, and no `<tag` that a Markdown renderer would treat as HTML."""
    text = " ".join(str(text).split())
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def _md_cell(text: Any) -> str:
    return _md_text(text).replace("|", "\\|")


def _md_code(text: Any) -> str:
    """Inline code span whose fence is longer than any backtick run inside the text."""
    text = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_block(text: Any, limit: int) -> str:
    """A fenced block, clipped to `limit` characters, whose fence outlasts any backtick run."""
    text = _clip(text, limit) if text else "(empty)"
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}text\n{text}\n{fence}"
