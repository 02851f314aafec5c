"""Evaluation reports people read: `report.html` (one self-contained file) and `report.md`.

Both answer "did fine-tuning help?" at the top, then give the evidence: the metric table with
confidence intervals and tests, the general-skills probe (forgetting check), the examples that
changed most, and the run details. Both are rendered from the `results` dict the evaluation stage
builds (the same data it writes to metrics.json); optional keys may be missing.

The HTML opens from disk with no network: inline CSS, no scripts, the loss curve inlined as a
base64 PNG. Every piece of user text (prompts, outputs, paths, warnings) is HTML-escaped, because
prompts are arbitrary and may contain markup such as `<script>`.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunewright.runs import atomic_write_text

HTML_NAME = "report.html"
MD_NAME = "report.md"

# Caps that keep report.html a few hundred KB even for thousands of examples.
HTML_MAX_EXAMPLES = 50  # wins + losses + rest together
HTML_PER_SECTION = 10  # biggest wins, and biggest losses
HTML_MAX_CHARS = 4000  # per text field
# report.md is meant for a PR comment, so it carries only a taste of the examples.
MD_PER_SECTION = 3
MD_MAX_CHARS = 800

# Metric families by name. Rates are fractions in [0, 1] shown as percentages; BLEU and chrF come
# on sacrebleu's 0-100 scale; everything else (loss, perplexity, ...) by significant digits.
RATE_KEYS = ("exact_match", "accuracy", "f1", "rouge", "precision", "recall")
SCORE_KEYS = ("bleu", "chrf")
TEST_NAMES = {
    "mcnemar": "McNemar",
    "wilcoxon": "Wilcoxon",
    "bootstrap": "paired bootstrap",
    "paired_bootstrap": "paired bootstrap",
    "sign": "sign test",
    "ttest": "paired t-test",
    "paired_t": "paired t-test",
}
MISSING = "—"

Results = Mapping[str, Any]
Row = Mapping[str, Any]


def write_reports(results: Results, out_dir: Path, loss_png: Path | None = None) -> list[str]:
    """Write report.html and report.md into `out_dir` (each atomically); return their names.

    `loss_png` is the training loss curve; it is embedded when given and present on disk."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / HTML_NAME, render_html(results, loss_png))
    atomic_write_text(out_dir / MD_NAME, render_markdown(results))
    return [HTML_NAME, MD_NAME]


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
    return f"{lead}: {_change_phrase(row)}"


# ---------------------------------------------------------------------------------------------
# Number formatting, shared by both formats.


def _kind(metric: str) -> str:
    name = metric.lower()
    if any(key in name for key in SCORE_KEYS):
        return "score"
    if any(key in name for key in RATE_KEYS):
        return "rate"
    return "real"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _sig(value: float, digits: int = 3, signed: bool = False) -> str:
    """`value` to `digits` significant digits, keeping trailing zeros (0.420, 2.31, 1235)."""
    sign = "+" if signed else ""
    if value == 0 or math.isinf(value):
        return f"{value:{sign}.{digits - 1}f}"
    if abs(value) < 1e-3:
        return f"{value:{sign}.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:{sign}.{decimals}f}"


def format_value(metric: str, value: Any) -> str:
    number = _number(value)
    if number is None:
        return MISSING
    kind = _kind(metric)
    if kind == "rate":
        return f"{number * 100:.1f}%"
    if kind == "score":
        return f"{number:.1f}"
    return _sig(number)


def format_diff(metric: str, value: Any, unit: bool = False) -> str:
    """Signed difference; rates in percentage points (`unit` adds " pts")."""
    number = _number(value)
    if number is None:
        return MISSING
    kind = _kind(metric)
    if kind == "rate":
        return f"{number * 100:+.1f}" + (" pts" if unit else "")
    if kind == "score":
        return f"{number:+.1f}"
    return _sig(number, signed=True)


def format_ci(metric: str, low: Any, high: Any) -> str:
    if _number(low) is None or _number(high) is None:
        return MISSING
    return f"{format_diff(metric, low)} to {format_diff(metric, high)}"


def format_p(p: Any) -> str:
    number = _number(p)
    if number is None:
        return MISSING
    return "< 0.001" if number < 0.001 else f"{number:.3f}"


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
    base, tuned = _number(row.get("base")), _number(row.get("tuned"))
    return None if base is None or tuned is None else tuned - base


def _change_phrase(row: Row) -> str:
    """`exact_match 5.0% → 85.0% (+80.0 points, 95% CI +66.0 to +92.0, McNemar p < 0.001)`."""
    metric = str(row.get("metric", "metric"))
    diff = format_diff(metric, _diff(row))
    details = [f"{diff} points" if _kind(metric) == "rate" and diff != MISSING else diff]
    if _number(row.get("ci_low")) is not None and _number(row.get("ci_high")) is not None:
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


def _probe_line(results: Results) -> str | None:
    """One line on forgetting, from the general-skills probe, when it ran."""
    rows = _metric_rows(results.get("probe"))
    if not rows:
        return None
    worse = [str(r.get("metric")) for r in rows if r.get("verdict") == "worse"]
    if worse:
        return f"General-skills probe: worse on {', '.join(worse)} (possible forgetting)."
    return "General-skills probe: no significant drop (no sign of forgetting)."


def _delta(example: Row) -> float | None:
    delta = _number(example.get("delta"))
    if delta is not None:
        return delta
    base, tuned = _number(example.get("score_base")), _number(example.get("score_tuned"))
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
        "final_loss": lambda v: f"final loss {_sig(v) if _number(v) is not None else v}",
        "tokens_per_s": lambda v: f"{v:,.0f} tokens/s" if _number(v) is not None else f"{v}",
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
        ("Base model", models.get("base")),
        ("Tuned model", models.get("tuned")),
        ("Decoding", _pairs(results.get("decoding")) or None),
        ("Training", _train_text(results["train"]) if results.get("train") else None),
    ]
    return [(label, str(value)) for label, value in rows if value not in (None, "")]


# ---------------------------------------------------------------------------------------------
# report.html


CSS = """
:root { --border: #d0d7de; --muted: #59636e; --code-bg: #f6f8fa;
  --green: #1a7f37; --green-bg: #dafbe1; --red: #cf222e; --red-bg: #ffebe9;
  --grey: #6e7781; --grey-bg: #eaeef2; --amber-bg: #fff8c5; --amber: #9a6700; }
* { box-sizing: border-box; }
body { font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2328; background: #fff; max-width: 1240px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 40px 0 12px; padding-bottom: 6px;
  border-bottom: 1px solid var(--border); }
h3 { font-size: 1.1em; margin: 28px 0 8px; }
.sub, .note, .muted { color: var(--muted); }
.verdict { margin: 20px 0 12px; padding: 16px 20px; border-left: 8px solid; border-radius: 8px;
  font-size: 1.2em; font-weight: 600; }
.verdict.better { background: var(--green-bg); border-color: var(--green); }
.verdict.worse { background: var(--red-bg); border-color: var(--red); }
.verdict.same { background: var(--grey-bg); border-color: var(--grey); }
.warnings { background: var(--amber-bg); border-left: 8px solid var(--amber); border-radius: 8px;
  padding: 10px 20px; margin: 12px 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 12px; border-bottom: 1px solid var(--border); text-align: right; }
th { background: var(--code-bg); font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
.lower { display: block; font-size: .8em; color: var(--muted); }
.pill { display: inline-block; padding: 1px 10px; border-radius: 999px; font-weight: 600;
  white-space: nowrap; }
.pill.better { background: var(--green-bg); color: var(--green); }
.pill.worse { background: var(--red-bg); color: var(--red); }
.pill.same { background: var(--grey-bg); color: var(--grey); }
.curve img { max-width: 100%; height: auto; border: 1px solid var(--border); border-radius: 6px; }
.example { border: 1px solid var(--border); border-radius: 8px; padding: 12px 16px;
  margin: 14px 0; }
.example header { display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: baseline; }
.label { font-size: .8em; font-weight: 600; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); margin-top: 10px; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 0 14px; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 0; padding: 8px 10px;
  background: var(--code-bg); border-radius: 6px; max-height: 26em; overflow-y: auto;
  font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 20px; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(results: Results, loss_png: Path | None = None) -> str:
    title = f"Evaluation report: {results.get('run') or 'run'}"
    body = [
        f"<h1>{_e(title)}</h1>",
        _html_subtitle(results),
        _html_summary(results),
        "<h2>Metrics</h2>",
        _html_metric_table(_metric_rows(results), "metrics"),
        _html_probe(results),
        _html_loss_curve(loss_png),
        _html_examples(results),
        _html_details(results),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def _html_subtitle(results: Results) -> str:
    models = results.get("models") or {}
    n = results.get("n_examples", len(results.get("examples") or []))
    return (
        f'<p class="sub">Base <code>{_e(models.get("base", "?"))}</code> vs tuned '
        f"<code>{_e(models.get('tuned', '?'))}</code> on {_e(n)} held-out examples "
        f"(identical prompts and decoding).</p>"
    )


def _html_summary(results: Results) -> str:
    verdict = _overall_verdict(results)
    parts = [f'<p class="verdict {_verdict_class(verdict)}">{_e(summary_sentence(results))}</p>']
    probe = _probe_line(results)
    if probe:
        parts.append(f"<p>{_e(probe)}</p>")
    # Warnings qualify the verdict (tiny eval set, truncated outputs ...), so they sit next to it.
    warnings = results.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f'<div class="warnings"><strong>Warnings</strong><ul>{items}</ul></div>')
    return "\n".join(parts)


def _html_metric_table(rows: Sequence[Row], table_id: str) -> str:
    if not rows:
        return '<p class="note">No metrics recorded.</p>'
    head = "".join(
        f"<th>{h}</th>"
        for h in ("metric", "base", "tuned", "difference", "95% CI", "test", "p-value", "verdict")
    )
    body = "\n".join(_html_metric_row(row) for row in rows)
    return (
        f'<div class="table-wrap"><table id="{table_id}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


def _html_metric_row(row: Row) -> str:
    metric = str(row.get("metric", "?"))
    lower = row.get("higher_is_better") is False
    name = _e(metric) + (' <span class="lower">↓ lower is better</span>' if lower else "")
    verdict = row.get("verdict")
    cells = [
        name,
        _e(format_value(metric, row.get("base"))),
        _e(format_value(metric, row.get("tuned"))),
        _e(format_diff(metric, _diff(row), unit=True)),
        _e(format_ci(metric, row.get("ci_low"), row.get("ci_high"))),
        _e(_test_name(row.get("test"))),
        _e(format_p(row.get("p_value"))),
        f'<span class="pill {_verdict_class(verdict)}">{_e(_verdict_label(verdict))}</span>',
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _html_probe(results: Results) -> str:
    probe = results.get("probe")
    if not probe:
        return ""
    note = probe.get("note") or (
        "Short general questions the base model mostly answers; a drop after fine-tuning means "
        "the tuning overwrote general skills."
    )
    n = f" ({_e(probe['n_examples'])} questions)" if probe.get("n_examples") else ""
    return (
        f"<h2>General-skills probe: checking for forgetting{n}</h2>\n"
        f'<p class="note">{_e(note)}</p>\n' + _html_metric_table(_metric_rows(probe), "probe")
    )


def _html_loss_curve(loss_png: Path | None) -> str:
    if loss_png is None or not Path(loss_png).is_file():
        return '<h2>Training loss</h2>\n<p class="note">No training loss curve available.</p>'
    data = base64.b64encode(Path(loss_png).read_bytes()).decode("ascii")
    return (
        '<h2>Training loss</h2>\n<figure class="curve">'
        f'<img alt="Training loss curve" src="data:image/png;base64,{data}"></figure>'
    )


def _html_examples(results: Results) -> str:
    examples = list(results.get("examples") or [])
    metric = str(results.get("primary_metric") or "score")
    parts = [f"<h2>Examples, base vs tuned (scored by {_e(metric)})</h2>"]
    if not examples:
        return parts[0] + '\n<p class="note">No per-example outputs recorded.</p>'
    wins, losses, rest, omitted = _pick_examples(examples, HTML_PER_SECTION, HTML_MAX_EXAMPLES)
    sections = (
        ("wins", "Biggest wins", wins, "No example improved."),
        ("losses", "Biggest losses", losses, "No example got worse."),
        ("rest", "Other examples", rest, "No other examples."),
    )
    for section_id, title, chosen, empty in sections:
        cards = "\n".join(_html_example(e, metric) for e in chosen)
        parts.append(
            f'<section id="{section_id}">\n<h3>{title} ({len(chosen)})</h3>\n'
            + (cards or f'<p class="note">{empty}</p>')
            + "\n</section>"
        )
    if omitted:
        parts.append(
            f'<p class="note">{omitted:,} more examples omitted to keep this file small.</p>'
        )
    return "\n".join(parts)


def _html_example(example: Row, metric: str) -> str:
    delta = _delta(example)
    klass = "better" if (delta or 0) > 0 else "worse" if (delta or 0) < 0 else "same"
    scores = (
        f"base {format_value(metric, example.get('score_base'))} → "
        f"tuned {format_value(metric, example.get('score_tuned'))}"
    )
    source = f'<span class="muted">{_e(example["source"])}</span>' if example.get("source") else ""
    return (
        f'<article class="example" data-index="{_e(example.get("index", ""))}">\n'
        f"<header><strong>#{_e(example.get('index', '?'))}</strong>{source}"
        f'<span>{_e(scores)}</span><span class="pill {klass}">'
        f"Δ {_e(format_diff(metric, delta, unit=True))}</span></header>\n"
        f"{_html_text('Prompt', example.get('prompt'))}\n"
        '<div class="pair">\n'
        f"<div>{_html_text('Reference', example.get('reference'))}</div>\n"
        f"<div>{_html_text('Base output', example.get('base'))}</div>\n"
        f"<div>{_html_text('Tuned output', example.get('tuned'))}</div>\n"
        "</div>\n</article>"
    )


def _html_text(label: str, text: Any) -> str:
    if text is None:
        body = '<span class="muted">(not recorded)</span>'
    elif text == "":
        body = '<span class="muted">(empty)</span>'
    else:
        body = _e(_clip(text, HTML_MAX_CHARS))
    # HTML drops one newline right after <pre>; giving it one keeps the text's own leading newline.
    return f'<div class="label">{_e(label)}</div><pre>\n{body}</pre>'


def _html_details(results: Results) -> str:
    items = "\n".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _details(results))
    return f"<h2>Run details</h2>\n<dl>\n{items}\n</dl>"


# ---------------------------------------------------------------------------------------------
# report.md


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


def _md_block(text: Any) -> list[str]:
    text = _clip(text, MD_MAX_CHARS) if text else "(empty)"
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return [f"{fence}text", text, fence]


def render_markdown(results: Results) -> str:
    icon = {"better": "✅", "worse": "❌"}.get(str(_overall_verdict(results)), "➖")
    lines = [f"## Evaluation: {_md_text(results.get('run') or 'run')}", ""]
    lines += [f"{icon} **{_md_text(summary_sentence(results))}**", ""]
    probe_line = _probe_line(results)
    if probe_line:
        lines += [_md_text(probe_line), ""]
    warnings = results.get("warnings") or []
    if warnings:
        lines += [*(f"- ⚠️ {_md_text(w)}" for w in warnings), ""]
    lines += ["### Metrics", "", *_md_metric_table(_metric_rows(results)), ""]
    probe = results.get("probe")
    if probe:
        lines += ["### General-skills probe: checking for forgetting", ""]
        if probe.get("note"):
            lines += [_md_text(probe["note"]), ""]
        lines += [*_md_metric_table(_metric_rows(probe)), ""]
    lines += _md_examples(results)
    lines += ["### Run details", ""]
    lines += [f"- **{label}:** {_md_code(value)}" for label, value in _details(results)]
    lines += ["", f"_Side-by-side outputs for more examples: {HTML_NAME}._", ""]
    return "\n".join(lines)


def _md_metric_table(rows: Sequence[Row]) -> list[str]:
    if not rows:
        return ["_No metrics recorded._"]
    lines = [
        "| metric | base | tuned | difference | 95% CI | test | p-value | verdict |",
        "|---|--:|--:|--:|--:|---|--:|---|",
    ]
    for row in rows:
        metric = str(row.get("metric", "?"))
        name = metric + (" (lower is better)" if row.get("higher_is_better") is False else "")
        cells: Iterable[str] = (
            name,
            format_value(metric, row.get("base")),
            format_value(metric, row.get("tuned")),
            format_diff(metric, _diff(row), unit=True),
            format_ci(metric, row.get("ci_low"), row.get("ci_high")),
            _test_name(row.get("test")),
            format_p(row.get("p_value")),
            _verdict_label(row.get("verdict")),
        )
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return lines


def _md_examples(results: Results) -> list[str]:
    examples = list(results.get("examples") or [])
    if not examples:
        return []
    metric = str(results.get("primary_metric") or "score")
    wins, losses, _, _ = _pick_examples(examples, MD_PER_SECTION, 2 * MD_PER_SECTION)
    lines: list[str] = []
    for title, chosen in (("Biggest wins", wins), ("Biggest losses", losses)):
        lines += [f"### {title}", ""]
        if not chosen:
            lines += ["_None._", ""]
        for example in chosen:
            lines += _md_example(example, metric)
    return lines


def _md_example(example: Row, metric: str) -> list[str]:
    # Collapsed by default, so a PR comment stays short: the score line is the summary.
    summary = (
        f"#{example.get('index', '?')} · "
        f"base {format_value(metric, example.get('score_base'))} → "
        f"tuned {format_value(metric, example.get('score_tuned'))} "
        f"(Δ {format_diff(metric, _delta(example), unit=True)})"
        + (f" · {example['source']}" if example.get("source") else "")
    )
    # <summary> is raw HTML inside Markdown, so it takes HTML escaping, not Markdown escaping.
    lines = [f"<details><summary>{_e(' '.join(summary.split()))}</summary>", ""]
    for label, key in (
        ("Prompt", "prompt"),
        ("Reference", "reference"),
        ("Base", "base"),
        ("Tuned", "tuned"),
    ):
        lines += [f"**{label}**", "", *_md_block(example.get(key)), ""]
    return [*lines, "</details>", ""]
