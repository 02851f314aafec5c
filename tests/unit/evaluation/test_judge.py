"""The pairwise judge against a rule-based judge served over the OpenAI wire protocol on
127.0.0.1, reached with the official openai client: both orders, ties from disagreeing orders,
the statistics, the cache, the cost line, and errors."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from tests.support.judge_stub import judge_app
from tests.support.serving import ServerThread

from tunewright.config.schema import JudgeSection
from tunewright.errors import TunewrightError
from tunewright.evaluation.judge import (
    METRIC,
    check_judge,
    consistency_warning,
    judge_outputs,
    parse_verdict,
)
from tunewright.evaluation.report import render_markdown

pytest.importorskip("openai")

KEY = "test-judge-key"


@pytest.fixture(scope="module")
def server() -> Any:
    app, received = judge_app(KEY)
    with ServerThread(app) as thread:
        yield thread, received


def _judge(url: str, **options: Any) -> JudgeSection:
    return JudgeSection(
        base_url=f"{url}/v1", model="rule-judge", api_key_env="TW_JUDGE_KEY", **options
    )


def _examples(kinds: list[str]) -> tuple[list, list[str], dict[str, list[str]]]:
    """kinds: win (tuned has the reference), loss (base has it), biased, garble."""
    prompts, references, base, tuned = [], [], [], []
    for i, kind in enumerate(kinds):
        marker = {"biased": " BIASED", "garble": " GARBLE"}.get(kind, "")
        prompts.append([{"role": "user", "content": f"Question {i}: the colour?{marker}"}])
        references.append(f"colour-{i}")
        base.append(f"colour-{i}" if kind == "loss" else "no idea")
        tuned.append(f"It is colour-{i}." if kind == "win" else "hmm")
    return prompts, references, {"base": base, "tuned": tuned}


def _run(judge: JudgeSection, kinds: list[str], cache: Path) -> tuple[dict[str, Any], str]:
    prompts, references, outputs = _examples(kinds)
    stream = io.StringIO()
    console = Console(file=stream, width=200)
    judged = judge_outputs(
        judge, "chat", prompts, references, outputs, cache, console, samples=500, seed=0
    )
    return judged, stream.getvalue()


def test_both_orders_ties_statistics_and_cache(server, tmp_path, monkeypatch) -> None:
    thread, received = server
    monkeypatch.setenv("TW_JUDGE_KEY", KEY)
    judge = _judge(thread.url, price_per_1k_tokens=0.01)
    kinds = ["win"] * 9 + ["loss"] + ["biased"] * 2
    cache = tmp_path / "judge_cache.jsonl"
    before = len(received)
    judged, printed = _run(judge, kinds, cache)

    sent = received[before:]
    assert len(sent) == 2 * len(kinds)  # every example in both orders
    first = [
        b["messages"][-1]["content"] for b in sent if "Question 0:" in b["messages"][-1]["content"]
    ]
    assert len(first) == 2
    # base ("no idea") is answer A in one order and answer B in the other
    assert {text.index("no idea") < text.index("colour-0.") for text in first} == {True, False}
    assert all(b["model"] == "rule-judge" and b["temperature"] == 0 for b in sent)

    assert (judged["wins"], judged["ties"], judged["losses"]) == (9, 2, 1)
    # the biased judge says "A" in both orders, i.e. base once and tuned once: a tie
    assert judged["consistency"] == pytest.approx(10 / 12)
    row = judged["metrics"][0]
    assert row["metric"] == METRIC and row["test"] == "sign"
    assert row["tuned"] == pytest.approx((9 + 1) / 12) and row["diff"] == pytest.approx(8 / 12)
    assert row["p_value"] == pytest.approx(2 * 11 / 2**10)  # 9 wins of 10 decided, two-sided
    assert row["ci_low"] > 0 and row["verdict"] == "better"
    assert judged["tokens"] > 0
    assert "24 requests to rule-judge (0 cached)" in printed and "per 1k tokens" in printed
    assert consistency_warning(judged) is None

    again, printed = _run(judge, kinds, cache)
    assert len(received) == before + 24  # the rerun asked nothing
    assert "(24 cached)" in printed and "at most 0 reply tokens" in printed
    assert again == judged


def test_an_inconsistent_judge_is_a_warning_and_no_verdict(server, tmp_path, monkeypatch) -> None:
    thread, _ = server
    monkeypatch.setenv("TW_JUDGE_KEY", KEY)
    judged, _ = _run(_judge(thread.url), ["biased"] * 6 + ["garble"] * 2, tmp_path / "c.jsonl")
    assert (judged["wins"], judged["ties"], judged["losses"]) == (0, 8, 0)
    assert judged["consistency"] == 0 and judged["unparsed_replies"] == 4
    assert judged["metrics"][0]["verdict"] == "no significant change"
    warning = consistency_warning(judged)
    assert warning is not None and "0%" in warning

    results = {
        "run": "r",
        "primary_metric": "exact_match",
        "verdict": "better",
        "metrics": judged["metrics"],
        "judge": judged,
        "warnings": [warning],
    }
    markdown = render_markdown(results)
    assert "| judge_win_rate |" in markdown and "sign test" in markdown
    assert "both orders agreed on 0%" in markdown


def test_a_missing_or_wrong_key_is_a_clear_error(server, tmp_path, monkeypatch) -> None:
    thread, _ = server
    monkeypatch.delenv("TW_JUDGE_KEY", raising=False)
    with pytest.raises(TunewrightError, match=r"eval\.judge\.api_key_env: TW_JUDGE_KEY is not set"):
        check_judge(_judge(thread.url))
    monkeypatch.setenv("TW_JUDGE_KEY", "wrong-key")
    with pytest.raises(TunewrightError, match="refused a request") as caught:
        _run(_judge(thread.url), ["win"], tmp_path / "c.jsonl")
    assert "wrong-key" not in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Verdict: A", "A"),
        ("**Verdict:** b", "B"),
        ("Verdict: A ... on reflection\nVerdict: tie", "tie"),
        ("A is better.", None),
    ],
)
def test_parse_verdict_takes_the_last_verdict_line(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_validate_names_an_unset_judge_key(monkeypatch) -> None:
    from tunewright.config import load_config
    from tunewright.evaluation.preflight import preflight

    config = load_config(None)
    config.eval.judge = _judge("http://127.0.0.1:9")
    monkeypatch.delenv("TW_JUDGE_KEY", raising=False)
    assert "eval.judge.api_key_env: TW_JUDGE_KEY is not set" in preflight(config)
    monkeypatch.setenv("TW_JUDGE_KEY", KEY)
    assert not [p for p in preflight(config) if p.startswith("eval.judge")]
