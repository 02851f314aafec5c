"""loss.png: train and eval loss against optimizer steps; rewards.png for the preference
objectives: the implicit rewards of the chosen and rejected answers, their margin and the share
of pairs ranked right, or for grpo the graders' rewards. Both from metrics.jsonl."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
    _save(fig, target)


# Objectives whose TRL trainer logs rewards: rewards/chosen, rewards/rejected, margins and
# accuracies for the preference objectives; each grader's rewards/<name>/mean and their weighted
# total (`reward`) for grpo.
PREFERENCE_PLOTS = ("dpo", "orpo", "simpo", "kto", "grpo")
REWARD_SERIES = ("rewards/chosen", "rewards/rejected", "rewards/margins")


def reward_curves(entries: list[dict], prefix: str = "") -> dict[str, list[tuple[int, float]]]:
    """Each reward series (and the accuracy) over steps; `prefix` "eval_" for the eval ones."""
    names = (*REWARD_SERIES, "rewards/accuracies")
    return {
        name: [(e["step"], e[prefix + name]) for e in entries if _finite(e.get(prefix + name))]
        for name in names
    }


def plot_rewards(metrics: Path, target: Path, title: str) -> None:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = read_metrics(metrics)
    if grader_curves(entries):
        plot_grader_rewards(entries, target, title)
        return
    train, evals = reward_curves(entries), reward_curves(entries, "eval_")
    fig, (rewards, accuracy) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for name, color in zip(REWARD_SERIES, ("#2ca02c", "#d62728", "#1f77b4"), strict=True):
        label = name.split("/")[1]
        if train[name]:
            rewards.plot(*zip(*train[name], strict=True), label=label, color=color)
        if evals[name]:
            rewards.plot(*zip(*evals[name], strict=True), "o--", label=f"eval {label}", color=color)
    for series, style, label in ((train, "-", "train"), (evals, "o--", "eval")):
        points = series["rewards/accuracies"]
        if points:
            accuracy.plot(*zip(*points, strict=True), style, label=label, color="#9467bd")
    rewards.set_title(f"{title}: implicit rewards")
    accuracy.set_title("pairs where chosen outscores rejected")
    for ax in (rewards, accuracy):
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    accuracy.set_ylim(-0.05, 1.05)
    _save(fig, target)


def grader_curves(entries: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """GRPO's mean reward per grader over steps (`rewards/<name>/mean`), plus `reward`, their
    weighted total."""
    names = sorted(
        {k for e in entries for k in e if k.startswith("rewards/") and k.endswith("/mean")}
    )
    if not names:
        return {}
    return {
        name: [(e["step"], e[name]) for e in entries if _finite(e.get(name))]
        for name in ["reward", *names]
    }


def plot_grader_rewards(entries: list[dict], target: Path, title: str) -> None:
    """rewards.png for grpo: the weighted total on the left, each grader's mean on the right."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = grader_curves(entries)
    fig, (total, each) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    if curves["reward"]:
        total.plot(*zip(*curves["reward"], strict=True), color="#1f77b4", label="weighted total")
    for name, points in curves.items():
        if name != "reward" and points:
            each.plot(*zip(*points, strict=True), label=name.split("/")[1])
    total.set_title(f"{title}: reward of the sampled answers")
    each.set_title("mean score per grader")
    for ax in (total, each):
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _save(fig, target)


def _save(fig: Any, target: Path) -> None:
    """The figure as PNG, written atomically, and closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(target, buffer.getvalue())
