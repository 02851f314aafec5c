"""`tunewright monitor` on synthetic request logs with known answers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunewright.errors import TunewrightError
from tunewright.serving.monitor import (
    drift,
    ks_test,
    monitor_log,
    population_stability,
    prompt_words,
    read_log,
    summarize,
)

START = datetime(2026, 11, 5, 10, 0, 0, tzinfo=timezone.utc)


def _line(second: float, status: int = 200, latency: float = 0.5, **extra: Any) -> dict:
    return {
        "time": (START + timedelta(seconds=second)).isoformat(),
        "request_id": f"r{second}",
        "endpoint": "/v1/chat/completions",
        "model": "tuned",
        "status": status,
        "prompt_tokens": 30,
        "completion_tokens": 10 if status == 200 else 0,
        "prompt_words": 20,
        "latency_s": latency,
        "error": None if status == 200 else "refused",
        **extra,
    }


def _write(path: Path, lines: list[dict], junk: str = "") -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + junk)
    return path


def _known_log() -> list[dict]:
    """100 successes with latencies 0.01 ... 1.00 s and 5 fast errors, one request a second."""
    ok = [_line(i, latency=round(0.01 * (i + 1), 2)) for i in range(100)]
    failed = [_line(100 + i, status=400 if i < 3 else 500, latency=0.001) for i in range(5)]
    return ok + failed


def _train_file(path: Path, lengths: list[int]) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": " ".join(["word"] * n)},
                {"role": "assistant", "content": "an answer of several words"},
            ]
        }
        for n in lengths
    ]
    return _write(path, rows)


def test_percentiles_error_rate_and_traffic_are_exact(tmp_path: Path) -> None:
    records, unreadable = read_log(_write(tmp_path / "log.jsonl", _known_log(), junk="{torn"))
    summary = summarize(records, None, unreadable)
    # numpy's linear interpolation over 0.01..1.00: rank 0.5*99 = 49.5 -> 0.505, and so on.
    assert summary.latency["p50"] == pytest.approx(0.505)
    assert summary.latency["p95"] == pytest.approx(0.9505)
    assert summary.latency["p99"] == pytest.approx(0.9901)
    assert summary.requests == 105 and unreadable == 1
    assert summary.errors == 5 and summary.server_errors == 2
    assert summary.error_rate == pytest.approx(5 / 105)
    assert summary.statuses == {200: 100, 400: 3, 500: 2}
    # 105 requests a second apart from 10:00:00: 60 in the first minute, 45 in the second.
    assert [(m.minute, n, e) for m, n, e in summary.per_minute] == [(0, 60, 0), (1, 45, 5)]
    assert summary.completion_tokens == 1000
    assert summary.request_speed == pytest.approx(
        np.median([10 / (0.01 * i) for i in range(1, 101)])
    )
    assert summary.drift is None and "--data" in summary.drift_note


def test_same_length_distribution_is_not_drift() -> None:
    rng = np.random.default_rng(0)
    train = np.round(rng.normal(20, 4, 400)).astype(int).tolist()
    served = np.round(rng.normal(20, 4, 200)).astype(int).tolist()
    result = drift(served, train)
    assert not result.flagged
    assert result.psi < 0.1 and result.p_value > 0.05
    assert result.verdict.startswith("no sign of drift")


def test_longer_prompts_are_flagged_as_drift() -> None:
    rng = np.random.default_rng(0)
    train = np.round(rng.normal(20, 4, 400)).astype(int).tolist()
    served = np.round(rng.normal(40, 4, 200)).astype(int).tolist()
    result = drift(served, train)
    assert result.flagged
    assert result.psi > 0.25 and result.p_value < 0.001 and result.ks > 0.9
    assert "DRIFT: a major shift" in result.verdict and "longer" in result.verdict


def test_few_requests_are_not_judged() -> None:
    result = drift([80, 90, 100], [10] * 50)
    assert not result.flagged and result.verdict.startswith("too few requests (3)")


def test_statistics_on_constant_and_identical_samples() -> None:
    # A constant training length still leaves a bin on each side, so a shift away shows.
    assert population_stability(np.array([30.0] * 50), np.array([12.0] * 50)) > 1
    assert population_stability(np.array([12.0] * 50), np.array([12.0] * 50)) == 0
    assert ks_test(np.arange(50.0), np.arange(50.0)) == (0.0, 1.0)


def test_ks_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(0.3, 1, 200)
    d, p = ks_test(a, b)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue, rel=0.15)


def test_prompt_words_counts_message_contents() -> None:
    assert prompt_words("a b  c\n d") == 4
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
    assert prompt_words(messages) == 5


def test_monitor_writes_summary_and_plot_with_drift(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "serve").mkdir(parents=True)
    (run / "data").mkdir()
    # The run's own train.jsonl is found without --data; prompts there are 5 words long.
    _train_file(run / "data" / "train.jsonl", [5] * 40)
    log = _write(run / "serve" / "requests.jsonl", _known_log())
    result = monitor_log(log)
    assert result.summary.drift is not None and result.summary.drift.flagged
    assert result.plot_path == run / "serve" / "monitor.png"
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (run / "serve" / "summary.txt").read_text()
    assert "p50 0.505 s, p95 0.950 s, p99 0.990 s" in text
    assert "errors: 5 (4.8%); server errors (5xx): 2" in text
    assert "DRIFT" in text and "median 20 words served vs 5 in training" in text


def test_monitor_prefers_logged_content_and_honours_out(tmp_path: Path) -> None:
    lines = [_line(i, prompt=[{"role": "user", "content": "a b c"}]) for i in range(30)]
    log = _write(tmp_path / "log.jsonl", lines)
    data = _train_file(tmp_path / "train.jsonl", [3] * 30)
    result = monitor_log(log, data, tmp_path / "report")
    assert result.summary.log_lengths == [3] * 30  # from the content, not prompt_words (20)
    assert result.summary.drift is not None and not result.summary.drift.flagged
    assert (tmp_path / "report" / "monitor.png").is_file()
    assert (tmp_path / "report" / "summary.txt").is_file()


def test_missing_or_empty_log_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(TunewrightError, match="not found"):
        read_log(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TunewrightError, match="no request records"):
        read_log(tmp_path / "empty.jsonl")


def test_monitor_command_prints_the_summary(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from tunewright.serving.cli import register

    app = typer.Typer()
    register(app)
    log = _write(tmp_path / "log.jsonl", _known_log())
    result = CliRunner().invoke(app, ["monitor", str(log), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "latency of successful requests" in result.output
    assert (tmp_path / "out" / "monitor.png").is_file()
