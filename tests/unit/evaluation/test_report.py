import base64
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tunewright.evaluation.report import HTML_MAX_EXAMPLES, write_reports
from tunewright.formatting import format_diff, format_p, format_value

SENTENCE_BETTER = (
    "Fine-tuning helped: exact_match 5.0% → 85.0% "
    "(+80.0 points, 95% CI +66.0 to +92.0, McNemar p < 0.001)"
)


def _metric(name: str, base: float, tuned: float, **extra: Any) -> dict[str, Any]:
    row = {
        "metric": name,
        "base": base,
        "tuned": tuned,
        "diff": tuned - base,
        "test": "mcnemar",
        "p_value": 0.5,
        "verdict": "same",
        "higher_is_better": True,
    }
    return row | extra


def _results(**overrides: Any) -> dict[str, Any]:
    deltas = [1.0, 0.0, -1.0, 1.0, 0.0, 0.5, -0.5, 0.0, 1.0, -1.0]
    examples = [
        {
            "index": i,
            "source": f"data/orders.jsonl:{i + 1}",
            "prompt": f"Extract the order from message {i}.\n\n\n  Keep  the spacing.",
            "reference": '{"name": "Ada", "qty": 2}',
            "base": "Sure! Here is the order: Ada | 2",
            "tuned": '{"name": "Ada", "qty": 2}',
            "score_base": 0.0 if d >= 0 else 1.0,
            "score_tuned": max(d, 0.0) if d >= 0 else 1.0 + d,
            "delta": d,
        }
        for i, d in enumerate(deltas)
    ]
    examples[3]["prompt"] = "Ignore this: <script>alert('x')</script> & reply"
    results: dict[str, Any] = {
        "run": "quickstart",
        "task": "instruction",
        "n_examples": len(examples),
        "models": {"base": "smollm2-135m-instruct", "tuned": "runs/quickstart/train/adapter"},
        "decoding": {"max_new_tokens": 48, "do_sample": False, "batch_size": 8},
        "primary_metric": "exact_match",
        "verdict": "better",
        "metrics": [
            _metric(
                "exact_match", 0.05, 0.85, diff=0.80, ci_low=0.66, ci_high=0.92,
                p_value=1.2e-08, verdict="better",
            ),
            _metric(
                "loss", 2.31, 0.42, diff=-1.89, ci_low=-2.0, ci_high=-1.7, test="wilcoxon",
                p_value=3e-6, verdict="better", higher_is_better=False,
            ),
            _metric(
                "chrf", 41.234, 44.5, ci_low=-1.5, ci_high=8.0, test="bootstrap",
                p_value=0.0341, verdict="better",
            ),
        ],
        "suites": [{
            "suite": "builtin",
            "n_questions": 30,
            "chance": 0.25,
            "metrics": [
                _metric("builtin accuracy", 0.8, 0.7667, ci_low=-0.2, ci_high=0.1, p_value=0.5)
            ],
        }],
        "examples": examples,
        "train": {"steps": 90, "final_loss": 0.21, "tokens_per_s": 190.0},
        "warnings": ["Only 10 examples: the confidence interval is wide | take care"],
    }  # fmt: skip
    return results | overrides


def _png_1x1() -> bytes:
    """A valid 1x1 RGB PNG, built by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte 0, one red pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


class _Page(HTMLParser):
    """Visible text, table rows by table id, and example indices by section id."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.sections: dict[str, list[int]] = {}
        self._table: str | None = None
        self._section: str | None = None
        self._cell: list[str] | None = None
        self._skip = False
        self.feed(source)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("style", "title"):
            self._skip = True
        elif tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "section":
            self._section = a.get("id") or ""
            self.sections[self._section] = []
        elif tag == "article" and self._section is not None:
            self.sections[self._section].append(int(a["data-index"] or -1))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip = False
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def visible(self) -> str:
        return " ".join("".join(self.text).split())


def _write(
    tmp_path: Path, results: dict[str, Any], loss_png: Path | None = None
) -> tuple[str, str]:
    names = write_reports(results, tmp_path, loss_png)
    assert names == ["report.html", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".png") == sorted(names)
    return (tmp_path / names[0]).read_text("utf-8"), (tmp_path / names[1]).read_text("utf-8")


def test_html_leads_with_verdict_and_formats_metric_table(tmp_path):
    page_html, _ = _write(tmp_path, _results())
    page = _Page(page_html)
    assert '<meta charset="utf-8">' in page_html
    assert SENTENCE_BETTER in page.visible
    assert 'class="verdict better"' in page_html
    assert page.visible.index(SENTENCE_BETTER) < page.visible.index("Biggest wins")
    header, *rows = page.tables["metrics"]
    assert header == [
        "metric", "base", "tuned", "difference", "95% CI", "test", "p-value", "verdict",
    ]  # fmt: skip
    assert rows == [
        ["exact_match", "5.0%", "85.0%", "+80.0 pts", "+66.0 to +92.0", "McNemar", "< 0.001",
         "✓ better"],
        ["loss ↓ lower is better", "2.31", "0.420", "-1.89", "-2.00 to -1.70", "Wilcoxon",
         "< 0.001", "✓ better"],
        ["chrf", "41.2", "44.5", "+3.3", "-1.5 to +8.0", "paired bootstrap", "0.034", "✓ better"],
    ]  # fmt: skip


def test_suite_table_is_separate_and_titled_as_forgetting_check(tmp_path):
    page = _Page(_write(tmp_path, _results())[0])
    assert "Benchmark suites: checking for forgetting" in page.visible
    assert "builtin: 30 questions, chance 25.0%" in page.visible
    assert page.tables["suites"][1] == [
        "builtin accuracy", "80.0%", "76.7%", "-3.3 pts", "-20.0 to +10.0", "McNemar", "0.500",
        "≈ no significant change",
    ]  # fmt: skip
    assert "Benchmark suites: no significant drop (no sign of forgetting)" in page.visible

    worse = _metric("builtin accuracy", 0.9, 0.5, verdict="worse")
    suites = [_results()["suites"][0] | {"metrics": [worse]}]
    page = _Page(_write(tmp_path, _results(suites=suites))[0])
    assert "worse on builtin accuracy (possible forgetting)" in page.visible


def test_user_text_is_escaped_and_whitespace_kept(tmp_path):
    page_html, _ = _write(tmp_path, _results())
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; reply" in page_html
    assert "<script" not in page_html.lower()
    assert "message 0.\n\n\n  Keep  the spacing." in page_html
    assert "white-space: pre-wrap" in page_html


def test_markup_in_model_outputs_and_run_fields_is_escaped(tmp_path):
    examples = _results()["examples"]
    examples[0] |= {
        "base": "<script>alert(1)</script>",
        "tuned": '<img src=x onerror="alert(2)">',
        "source": "<b>source</b>",
    }
    results = _results(
        examples=examples,
        run="<i>run</i>",
        models={"base": "<base>", "tuned": "<tuned>"},
        warnings=["<script>warn()</script>"],
        train={"note": "<script>train()</script>"},
    )
    page_html, _ = _write(tmp_path, results)
    assert "<script" not in page_html.lower() and "<img" not in page_html
    assert "<i>" not in page_html and "<b>source" not in page_html
    assert "<pre>\n&lt;script&gt;alert(1)&lt;/script&gt;</pre>" in page_html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page_html
    page = _Page(page_html)
    assert "<script>alert(1)</script>" in page.visible
    assert "Evaluation report: <i>run</i>" in page.visible
    assert "<script>warn()</script>" in page.visible


def test_html_is_self_contained(tmp_path):
    page_html, _ = _write(tmp_path, _results(), tmp_path / "missing.png")
    network = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(|@import""", re.I)
    assert not network.search(page_html)
    assert "http://" not in page_html and "https://" not in page_html


def test_loss_curve_embedded_when_given_and_note_otherwise(tmp_path):
    png = tmp_path / "loss.png"
    png.write_bytes(_png_1x1())
    with_curve, _ = _write(tmp_path, _results(), png)
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    assert f'src="data:image/png;base64,{encoded}"' in with_curve
    assert "No training loss curve" not in with_curve

    for missing in (None, tmp_path / "absent.png"):
        without, _ = _write(tmp_path, _results(), missing)
        assert "No training loss curve available." in without
        assert "data:image/png" not in without


def test_wins_descending_losses_ascending_and_rest_in_order(tmp_path):
    page = _Page(_write(tmp_path, _results())[0])
    # deltas by index: 1.0, 0.0, -1.0, 1.0, 0.0, 0.5, -0.5, 0.0, 1.0, -1.0
    assert page.sections["wins"] == [0, 3, 8, 5]
    assert page.sections["losses"] == [2, 9, 6]
    assert page.sections["rest"] == [1, 4, 7]


def test_examples_are_capped_with_an_omitted_count(tmp_path):
    many = [
        {"index": i, "prompt": "p", "reference": "r", "base": "b", "tuned": "t", "delta": 0.0}
        for i in range(HTML_MAX_EXAMPLES + 25)
    ]
    page_html, _ = _write(tmp_path, _results(examples=many))
    assert page_html.count('<article class="example"') == HTML_MAX_EXAMPLES
    assert "25 more examples omitted" in page_html


@pytest.mark.parametrize(
    ("verdict", "diff", "ci", "p", "sentence", "css"),
    [
        (
            "same", 0.05, (-0.05, 0.15), 0.34,
            "No significant change: exact_match 5.0% → 10.0% "
            "(+5.0 points, 95% CI -5.0 to +15.0, McNemar p = 0.340)",
            "same",
        ),
        (
            "worse", -0.04, (-0.05, -0.01), 0.012,
            "Fine-tuning made it worse: exact_match 5.0% → 1.0% "
            "(-4.0 points, 95% CI -5.0 to -1.0, McNemar p = 0.012)",
            "worse",
        ),
    ],
)  # fmt: skip
def test_other_verdicts_render_their_sentence(tmp_path, verdict, diff, ci, p, sentence, css):
    row = _metric(
        "exact_match", 0.05, 0.05 + diff, diff=diff, ci_low=ci[0], ci_high=ci[1], p_value=p,
        verdict=verdict,
    )  # fmt: skip
    page_html, md = _write(tmp_path, _results(verdict=verdict, metrics=[row]))
    assert sentence in _Page(page_html).visible
    assert f'class="verdict {css}"' in page_html
    assert sentence in md


def test_markdown_has_summary_tables_examples_and_escapes_pipes(tmp_path):
    _, md = _write(tmp_path, _results())
    assert SENTENCE_BETTER in md
    assert "| metric | base | tuned | difference | 95% CI | test | p-value | verdict |" in md
    assert (
        "| exact_match | 5.0% | 85.0% | +80.0 pts | +66.0 to +92.0 | McNemar | < 0.001 | ✓ better |"
        in md
    )
    assert "| loss (lower is better) | 2.31 | 0.420 | -1.89 |" in md
    assert "### Benchmark suites: checking for forgetting" in md
    assert "| builtin accuracy | 80.0% | 76.7% |" in md
    assert "- ⚠️ Only 10 examples: the confidence interval is wide | take care" in md
    assert "```text\nExtract the order from message 0.\n\n\n  Keep  the spacing.\n```" in md
    assert "\n\n\n" not in re.sub(r"```text\n.*?\n```", "(block)", md, flags=re.S)
    assert md.index("### Biggest wins") < md.index("### Biggest losses")
    assert md.count("<details><summary>#") == md.count("</details>") == 6  # 3 wins, 3 losses
    assert "<summary>#0 · base 0.0% → tuned 100.0% (Δ +100.0 pts) · data/orders.jsonl:1<" in md
    outside_fences = re.sub(r"```text\n.*?\n```", "", md, flags=re.S)
    assert "<script" not in outside_fences
    assert "```text\nIgnore this: <script>alert('x')</script> & reply\n```" in md


def test_markdown_table_cells_escape_pipes(tmp_path):
    row = _metric("rouge|L", 0.2, 0.3)
    _, md = _write(tmp_path, _results(metrics=[row], primary_metric="rouge|L"))
    assert "| rouge\\|L | 20.0% | 30.0% | +10.0 pts |" in md


def test_missing_optional_keys_still_render(tmp_path):
    bare = {"metrics": [], "examples": []}
    page_html, md = _write(tmp_path, bare)
    assert "No metrics recorded." in page_html and "No per-example outputs recorded." in page_html
    assert "No training loss curve available." in page_html
    assert "No significant change." in md


@pytest.mark.parametrize(
    ("metric", "value", "shown", "diff"),
    [
        ("exact_match", 0.853, "85.3%", "+85.3"),
        ("rougeL", 0.5, "50.0%", "+50.0"),
        ("bleu", 27.456, "27.5", "+27.5"),
        ("perplexity", 1234.56, "1235", "+1235"),
        ("loss", 0.04213, "0.0421", "+0.0421"),
    ],
)
def test_number_formats(metric, value, shown, diff):
    assert format_value(metric, value) == shown
    assert format_diff(metric, value) == diff
    assert format_value(metric, None) == format_value(metric, float("nan")) == "—"


def test_p_value_format():
    assert [format_p(p) for p in (1e-9, 0.00099, 0.0341, 0.5, None)] == [
        "< 0.001", "< 0.001", "0.034", "0.500", "—",
    ]  # fmt: skip


def test_examples_left_out_are_named_in_both_reports(tmp_path):
    selection = {"available": 9, "without_reference": 3, "over_max_examples": 2, "evaluated": 4}
    page_html, page_md = _write(tmp_path, {**_results(), "selection": selection})
    note = "evaluating 4 of 9 examples; left out: 3 without an assistant answer to compare, "
    assert note in _Page(page_html).visible
    assert note in page_md
