"""`tunewright monitor`: read a serve request log and report how the service behaves.

Read top to bottom in `monitor_log`: read the JSONL log (`tunewright serve` writes one line per
request), summarise latency, errors, tokens and traffic, compare prompt lengths with the training
prompts (input drift), then write `summary.txt` and `monitor.png`.

Drift is measured in whitespace-separated words of the prompt text (all messages before the
reply; no chat template), a tokenizer-free stand-in for length that is computed the same way on
both sides: serve logs `prompt_words` for every request (content is not needed), and training
prompts are the messages before each example's last assistant turn. Two statistics compare the
distributions: the population stability index (PSI, over deciles of the training lengths) for how
much they differ, and the two-sample Kolmogorov-Smirnov test for whether the difference is more
than chance.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tunewright.errors import InputFileError, TunewrightError
from tunewright.request_log import read_request_log

# PSI bands as commonly read: under 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a major one.
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
KS_ALPHA = 0.05
MIN_DRIFT_SAMPLES = 20  # fewer requests than this cannot show a shift reliably


def prompt_words(prompt: Any) -> int:
    """Whitespace words in a prompt: a text, or chat messages (their contents)."""
    if isinstance(prompt, str):
        return len(prompt.split())
    if isinstance(prompt, list):
        return sum(prompt_words(item) for item in prompt)
    if isinstance(prompt, dict):
        content = prompt.get("content")
        if isinstance(content, list):  # OpenAI content parts
            return sum(len(str(part.get("text", "")).split()) for part in content)
        return len(str(content or "").split())
    return 0


@dataclass
class Drift:
    log_n: int
    train_n: int
    log_median: float
    train_median: float
    ks: float  # largest gap between the two cumulative distributions, 0-1
    p_value: float
    psi: float
    flagged: bool
    verdict: str


@dataclass
class Summary:
    requests: int
    first: datetime
    last: datetime
    statuses: dict[int, int]
    errors: int  # status >= 400, or an error after a stream started
    server_errors: int  # status >= 500
    latency: dict[str, float]  # p50/p95/p99 seconds over successful requests
    latency_by_endpoint: dict[str, dict[str, float]]  # the same per endpoint
    prompt_tokens: int
    completion_tokens: int
    throughput: float  # completion tokens per second of the log's time span
    request_speed: float | None  # median completion tokens/s of one request
    per_minute: list[tuple[datetime, int, int]]  # minute, requests, errors
    unreadable: int = 0
    drift: Drift | None = None
    drift_note: str = ""
    train_source: str | None = None
    log_lengths: list[int] = field(default_factory=list)
    train_lengths: list[int] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass
class MonitorResult:
    summary: Summary
    text: str
    summary_path: Path
    plot_path: Path


def monitor_log(
    log_path: Path, data_path: Path | None = None, out_dir: Path | None = None
) -> MonitorResult:
    """Summarise a request log (and drift against `data_path`); writes summary.txt, monitor.png.

    `data_path` defaults to the run's prepared train.jsonl when the log sits in `<run>/serve/`.
    """
    from tunewright.files import atomic_write_text

    records, unreadable = read_log(log_path)
    data_path = data_path or _default_training_data(log_path)
    train_lengths = training_prompt_words(data_path) if data_path else None
    summary = summarize(records, train_lengths, unreadable=unreadable)
    summary.train_source = str(data_path) if data_path else None
    text = format_summary(summary)
    out_dir = out_dir or log_path.parent
    summary_path = out_dir / "summary.txt"
    atomic_write_text(summary_path, text + "\n")
    plot_path = plot(records, summary, out_dir / "monitor.png")
    return MonitorResult(summary, text, summary_path, plot_path)


def read_log(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The log's request records and the number of lines that were not one."""
    if not path.is_file():
        raise InputFileError(
            f"request log not found: {path}",
            hint="`tunewright serve` writes it to <run>/serve/requests.jsonl (or --log PATH).",
        )
    records, unreadable = read_request_log(path)
    if not records:
        raise TunewrightError(f"{path} holds no request records", hint="Send the server requests.")
    return records, unreadable


def training_prompt_words(path: Path) -> list[int]:
    """Prompt length in words of each training example (any format the data stage reads)."""
    from tunewright.config import load_config
    from tunewright.data.prepare import load_side

    if not path.exists():
        raise InputFileError(f"training data not found: {path}")
    records = load_side(load_config(None), [str(path)], "train").records
    lengths = []
    for record in records:
        messages = record["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        prompt = messages[:last] if last is not None else messages
        if prompt:
            lengths.append(prompt_words(prompt))
    return lengths


def summarize(
    records: list[dict[str, Any]], train_lengths: list[int] | None, unreadable: int = 0
) -> Summary:
    import numpy as np

    ok = [r for r in records if not _failed(r)]
    first, last = records[0]["_time"], records[-1]["_time"]
    span = max((last - first).total_seconds() + (records[-1].get("latency_s") or 0), 1e-9)
    completion = sum(int(r.get("completion_tokens") or 0) for r in records)
    speeds = [
        r["completion_tokens"] / r["latency_s"]
        for r in ok
        if r.get("completion_tokens") and r.get("latency_s")
    ]
    summary = Summary(
        requests=len(records),
        first=first,
        last=last,
        statuses=dict(sorted(Counter(int(r.get("status") or 0) for r in records).items())),
        errors=sum(_failed(r) for r in records),
        server_errors=sum(int(r.get("status") or 0) >= 500 for r in records),
        latency=percentiles([float(r.get("latency_s") or 0) for r in ok]),
        latency_by_endpoint={
            endpoint: percentiles([float(r.get("latency_s") or 0) for r in group])
            for endpoint, group in _by_endpoint(ok).items()
        },
        prompt_tokens=sum(int(r.get("prompt_tokens") or 0) for r in records),
        completion_tokens=completion,
        throughput=completion / span,
        request_speed=float(np.median(speeds)) if speeds else None,
        per_minute=per_minute(records),
        unreadable=unreadable,
    )
    _add_drift(summary, records, train_lengths)
    return summary


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 by numpy's default: linear interpolation between the closest ranks."""
    import numpy as np

    if not values:
        return {f"p{q}": math.nan for q in (50, 95, 99)}
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}


def per_minute(records: list[dict[str, Any]]) -> list[tuple[datetime, int, int]]:
    """(minute, requests, errors) for every minute from the first request to the last."""
    counts: Counter[datetime] = Counter()
    errors: Counter[datetime] = Counter()
    for record in records:
        minute = record["_time"].replace(second=0, microsecond=0)
        counts[minute] += 1
        errors[minute] += _failed(record)
    minute, end = min(counts), max(counts)
    rows = []
    while minute <= end:
        rows.append((minute, counts[minute], errors[minute]))
        minute += timedelta(minutes=1)
    return rows


def drift(log_lengths: list[int], train_lengths: list[int]) -> Drift:
    """Compare prompt lengths seen in serving with those seen in training."""
    import numpy as np

    log, train = np.asarray(log_lengths, float), np.asarray(train_lengths, float)
    ks, p_value = ks_test(log, train)
    psi = population_stability(log, train)
    log_median, train_median = float(np.median(log)), float(np.median(train))
    flagged = len(log) >= MIN_DRIFT_SAMPLES and psi >= PSI_MODERATE and p_value < KS_ALPHA
    verdict = _verdict(len(log), log_median, train_median, ks, p_value, psi, flagged)
    return Drift(len(log), len(train), log_median, train_median, ks, p_value, psi, flagged, verdict)


def ks_test(a: Any, b: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value (Numerical Recipes'
    series with Stephens' small-sample correction; conservative when lengths tie)."""
    import numpy as np

    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    gap = np.abs(
        np.searchsorted(a, points, side="right") / len(a)
        - np.searchsorted(b, points, side="right") / len(b)
    )
    d = float(gap.max())
    n = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (n + 0.12 + 0.11 / n) * d
    if lam < 0.2:  # the series converges slowly here and its value is 1 to 4 decimals
        return d, 1.0
    terms = (2 * (-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return d, min(max(sum(terms), 0.0), 1.0)


def population_stability(log: Any, train: Any, bins: int = 10, floor: float = 1e-4) -> float:
    """PSI over bins at the training deciles: sum of (log share - train share) * ln(ratio).

    Bins are (-inf, e1], (e1, e2], ..., (ek, inf), so even a constant training length leaves a
    bin on each side of it. Empty bins count as `floor` so the logarithm stays finite."""
    import numpy as np

    edges = np.unique(np.quantile(train, np.linspace(0, 1, bins + 1))[:-1])
    shares = []
    for values in (log, train):
        counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
        shares.append(np.maximum(counts / len(values), floor))
    log_share, train_share = shares
    return float(np.sum((log_share - train_share) * np.log(log_share / train_share)))


def format_summary(s: Summary) -> str:
    minutes = (s.last - s.first).total_seconds() / 60
    statuses = ", ".join(f"{code} x{count}" for code, count in s.statuses.items())
    traffic = [count for _, count, _ in s.per_minute]
    lines = [
        f"requests: {s.requests} from {_when(s.first)} to {_when(s.last)} ({minutes:.1f} min)",
        f"status: {statuses}",
        f"errors: {s.errors} ({s.error_rate:.1%}); server errors (5xx): {s.server_errors}",
        f"latency of successful requests: {_quantiles(s.latency)}",
        *(
            f"  {endpoint}: {_quantiles(values)}"
            for endpoint, values in s.latency_by_endpoint.items()
            if len(s.latency_by_endpoint) > 1
        ),
        f"tokens: {s.prompt_tokens} prompt, {s.completion_tokens} completion; "
        f"{s.throughput:.2f} completion tokens/s over the log's span"
        + (f", median {s.request_speed:.2f} tokens/s per request" if s.request_speed else ""),
        f"traffic per minute: min {min(traffic)}, median {sorted(traffic)[len(traffic) // 2]}, "
        f"max {max(traffic)}",
    ]
    if s.unreadable:
        lines.append(f"unreadable log lines skipped: {s.unreadable}")
    if s.drift:
        d = s.drift
        lines.append(
            f"input drift (prompt length in whitespace words, {d.log_n} requests vs "
            f"{d.train_n} training prompts from {s.train_source}): {d.verdict}"
        )
    else:
        lines.append(f"input drift: {s.drift_note}")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], summary: Summary, path: Path) -> Path:
    """Latency over time, requests per minute, and prompt-length histograms in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, (latency, traffic, lengths) = plt.subplots(3, 1, figsize=(9, 10))
    for failed, style in ((False, "o"), (True, "x")):
        chosen = [r for r in records if _failed(r) == failed]
        latency.plot(
            [r["_time"] for r in chosen],
            [r.get("latency_s") or 0 for r in chosen],
            style,
            markersize=3,
            color="tab:red" if failed else "tab:blue",
            label="error" if failed else "ok",
        )
    latency.set(title="Latency per request", ylabel="seconds")
    minutes = [m for m, _, _ in summary.per_minute]
    width = 0.8 / (24 * 60)  # 80% of a minute, in matplotlib's date unit (days)
    counts = [c for _, c, _ in summary.per_minute]
    traffic.bar(minutes, counts, width, align="edge", label="requests")
    errors = [e for _, _, e in summary.per_minute]
    traffic.bar(minutes, errors, width, align="edge", color="tab:red", label="errors")
    traffic.set(title="Requests per minute", ylabel="requests")
    for axis in (latency, traffic):
        locator = mdates.AutoDateLocator()
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axis.legend(loc="upper left")
    _length_histograms(lengths, summary.log_lengths, summary.train_lengths)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _length_histograms(axis: Any, served: list[int], train: list[int]) -> None:
    """Both length distributions on shared whole-word bins, as shares of their own totals."""
    import numpy as np

    axis.set(title="Prompt length", xlabel="whitespace words", ylabel="share of prompts")
    if not served and not train:
        axis.text(0.5, 0.5, "no prompt lengths", ha="center", transform=axis.transAxes)
        return
    low, high = min(served + train), max(served + train)
    step = max(1, math.ceil((high - low + 1) / 40))  # at most ~40 bars
    edges = np.arange(low, high + step + 1, step) - 0.5
    for values, label in ((served, "served"), (train, "training")):
        if values:
            weights = np.full(len(values), 1 / len(values))
            axis.hist(values, bins=edges, weights=weights, alpha=0.6, label=label)
    axis.legend()


def _add_drift(
    summary: Summary, records: list[dict[str, Any]], train_lengths: list[int] | None
) -> None:
    summary.log_lengths = [n for n in map(_request_words, records) if n is not None]
    summary.train_lengths = list(train_lengths or [])
    if train_lengths is None:
        summary.drift_note = "not checked (pass --data with the training file)"
    elif not train_lengths:
        summary.drift_note = "not checked (the training data has no prompts)"
    elif not summary.log_lengths:
        summary.drift_note = "not checked (the log has neither prompt_words nor content)"
    else:
        summary.drift = drift(summary.log_lengths, train_lengths)


def _request_words(record: dict[str, Any]) -> int | None:
    if record.get("prompt") is not None:
        return prompt_words(record["prompt"])
    words = record.get("prompt_words")
    return int(words) if words is not None else None


def _quantiles(values: dict[str, float]) -> str:
    return ", ".join(f"{q} {v:.3f} s" for q, v in values.items())


def _by_endpoint(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record.get("endpoint")), []).append(record)
    return dict(sorted(groups.items()))


def _when(moment: datetime) -> str:
    if moment.utcoffset() == timedelta(0):
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.isoformat(sep=" ", timespec="seconds")


def _failed(record: dict[str, Any]) -> bool:
    return int(record.get("status") or 0) >= 400 or bool(record.get("error"))


def _verdict(
    n: int, log_median: float, train_median: float, ks: float, p: float, psi: float, flagged: bool
) -> str:
    stats = f"PSI {psi:.3f}, KS D {ks:.3f} (p {'< 0.001' if p < 0.001 else f'{p:.3f}'})"
    medians = f"median {log_median:g} words served vs {train_median:g} in training"
    if n < MIN_DRIFT_SAMPLES:
        return f"too few requests ({n}) to judge; {medians}; {stats}."
    if not flagged:
        return f"no sign of drift: prompt lengths match training ({medians}; {stats})."
    direction = "longer" if log_median > train_median else "shorter"
    size = "a major" if psi >= PSI_MAJOR else "a moderate"
    return (
        f"DRIFT: {size} shift, served prompts are {direction} than training prompts "
        f"({medians}; {stats}). The model is answering inputs unlike those it was tuned on; "
        "check its answers on them, and consider adding such examples to the training data."
    )


def _default_training_data(log_path: Path) -> Path | None:
    """`<run>/data/train.jsonl` for a log at `<run>/serve/requests.jsonl`, if it exists."""
    from tunewright.runs import data_split, run_of_request_log

    candidate = data_split(run_of_request_log(log_path), "train")
    return candidate if candidate.is_file() else None
