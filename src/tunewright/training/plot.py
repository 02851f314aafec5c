"""loss.png: train and eval loss against optimizer steps, from metrics.jsonl."""

from __future__ import annotations

import math
from pathlib import Path

from tunewright.files import atomic_write_bytes, read_jsonl


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return read_jsonl(path)


def loss_curves(entries: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    train = [(e["step"], e["loss"]) for e in entries if _finite(e.get("loss"))]
    evals = [(e["step"], e["eval_loss"]) for e in entries if _finite(e.get("eval_loss"))]
    return train, evals


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def plot_loss(metrics: Path, target: Path, title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    train, evals = loss_curves(read_metrics(metrics))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="#1f77b4")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss", color="#d62728")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(target, buffer.getvalue())
