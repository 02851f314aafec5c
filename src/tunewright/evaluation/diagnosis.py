"""What went wrong with a run, read from its training history and its eval results, each finding
with its evidence and the config change it suggests.

- under-trained: eval loss still falling over the last evaluations;
- over-trained: eval loss rising from its lowest point while train loss kept falling;
- too little eval data: the verdict is not significant, and the smallest difference this many
  examples could detect (80% power, two-sided 5% test) on the primary metric is larger than a
  difference worth detecting;
- degenerate outputs: empty answers, repetition loops, answers running far past the references;
- forgetting: a benchmark suite (eval.suites) significantly worse after tuning.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from tunewright.formatting import metric_kind

if TYPE_CHECKING:
    from tunewright.config import Config

# Relative drop (or rise) of eval loss between evaluations that counts as a real trend.
TREND = 0.02
# Eval loss (nats per answer token) below which the answers are near-certain already: still
# falling by 2% there is no sign of under-training (the quickstart ends at 0.010).
SETTLED_LOSS = 0.05
# A difference worth detecting, per kind of metric: 10 points of a rate, 5 chrF/BLEU points,
# 0.1 nats of loss.
WORTH_DETECTING = {"rate": 0.10, "score": 5.0, "real": 0.1}
# z(0.975) + z(0.80): a paired two-sided 5% test with 80% power detects sd x this / sqrt(n).
Z_POWER = 1.96 + 0.84
# Shares of tuned answers that make a degenerate-output finding.
DEGENERATE_SHARE = 0.2
# An answer whose distinct word trigrams are under this share of its trigrams loops.
REPEAT_DISTINCT = 0.5
# Tuned answers longer than this many times the references' median length run away.
RUNAWAY_FACTOR = 2.0


@dataclass(frozen=True)
class Finding:
    kind: (
        str  # under_trained | over_trained | too_little_eval_data | degenerate_outputs | forgetting
    )
    finding: str  # what is wrong, with its evidence
    suggestion: str  # the config change

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def diagnose(
    history: list[dict[str, Any]], results: dict[str, Any], hyper: dict[str, Any]
) -> list[Finding]:
    """Findings for a run: `history` is train/metrics.jsonl's rows, `results` eval's
    metrics.json, `hyper` the train manifest's resolved hyperparameters."""
    # The final evaluation may repeat the last step's: one point per step.
    by_step = {int(r["step"]): float(r["eval_loss"]) for r in history if "eval_loss" in r}
    evals = sorted(by_step.items())
    losses = [(int(r["step"]), float(r["loss"])) for r in history if "loss" in r]
    found = [
        _under_trained(evals, hyper),
        _over_trained(evals, losses, hyper),
        _too_little_eval_data(results),
        _degenerate(results.get("examples") or []),
        _forgetting(results.get("suites") or [], hyper),
    ]
    return [f for f in found if f is not None]


def _forgetting(suites: list[dict[str, Any]], hyper: dict[str, Any]) -> Finding | None:
    worse = [
        f"{row['metric']} {row['base']:.1%} -> {row['tuned']:.1%} (p = {row['p_value']:.2g})"
        for suite in suites
        for row in suite.get("metrics") or []
        if row.get("verdict") == "worse"
    ]
    if not worse:
        return None
    rate = hyper.get("learning_rate")
    lower = f"train.learning_rate: {rate / 2:g}, " if isinstance(rate, (int, float)) else ""
    return Finding(
        "forgetting",
        f"Forgetting: general skills dropped significantly ({'; '.join(worse)}).",
        f"If they matter, train gentler ({lower}fewer train.epochs, or a smaller train.lora.r) "
        "or mix general examples into the training set (data.train entries with weight).",
    )


def _under_trained(evals: list[tuple[int, float]], hyper: dict[str, Any]) -> Finding | None:
    last = [loss for _, loss in evals[-3:]]
    if len(last) < 2 or any(b > a * (1 - TREND) for a, b in pairwise(last)):
        return None
    if last[-1] < SETTLED_LOSS:
        return None
    curve = " -> ".join(f"{loss:.3f}" for loss in last)
    steps = f"steps {evals[-len(last)][0]}-{evals[-1][0]}"
    return Finding(
        "under_trained",
        f"Under-trained: eval loss was still falling at the end ({curve} over the last "
        f"{len(last)} evaluations, {steps}).",
        f"Train longer: {_longer(hyper)}.",
    )


def _over_trained(
    evals: list[tuple[int, float]], losses: list[tuple[int, float]], hyper: dict[str, Any]
) -> Finding | None:
    if len(evals) < 3:
        return None
    best_step, best = min(evals, key=lambda e: e[1])
    final_step, final = evals[-1]
    if best_step == final_step or final < best * (1 + TREND):
        return None
    train_then = _mean_near(losses, best_step)
    train_end = _mean_near(losses, final_step)
    if train_then is None or train_end is None or train_end >= train_then:
        return None
    epochs = hyper.get("epochs")
    fewer = (
        f"train.epochs: {max(1, math.ceil(epochs * best_step / final_step))}"
        if isinstance(epochs, int) and final_step
        else f"train.max_steps: {best_step}"
    )
    return Finding(
        "over_trained",
        f"Over-trained: eval loss was lowest at step {best_step} ({best:.3f}) and rose to "
        f"{final:.3f} by step {final_step} while train loss fell {train_then:.3f} -> "
        f"{train_end:.3f}.",
        f"Stop earlier: {fewer}, or train.early_stopping_patience: 2 (with save_every equal "
        "to eval_every the best checkpoint is the one kept).",
    )


def _too_little_eval_data(results: dict[str, Any]) -> Finding | None:
    metric = str(results.get("primary_metric") or "")
    deltas = [float(e["delta"]) for e in results.get("examples") or [] if "delta" in e]
    n = len(deltas)
    # A significant verdict means these examples sufficed for the difference there is.
    if n < 2 or metric not in _PRIMARY_TEXT or results.get("verdict") in ("better", "worse"):
        return None
    target = WORTH_DETECTING[metric_kind(metric)]
    # A spread of 0 (every example changed alike) says nothing of the next sample: assume
    # half the scale's width then.
    sd = statistics.stdev(deltas) or (0.5 if metric_kind(metric) == "rate" else 50.0 * target)
    detectable = Z_POWER * sd / math.sqrt(n)
    if detectable <= target:
        return None
    needed = math.ceil((Z_POWER * sd / target) ** 2)
    unit = " points" if metric_kind(metric) == "rate" else ""
    scale = 100 if metric_kind(metric) == "rate" else 1
    return Finding(
        "too_little_eval_data",
        f"Too little eval data: with {n} examples, only differences in {metric} of "
        f"{detectable * scale:.3g}{unit} or more can be detected (80% power); one of "
        f"{target * scale:g}{unit} needs about {needed} examples.",
        f"Evaluate on about {needed} examples: a held-out file in data.eval, or a larger "
        "data.eval_fraction.",
    )


def _degenerate(examples: list[dict[str, Any]]) -> Finding | None:
    answers = [str(e.get("tuned") or "") for e in examples]
    if not answers:
        return None
    share = DEGENERATE_SHARE * len(answers)
    empty = sum(not a.strip() for a in answers)
    looping = sum(_loops(a) for a in answers)
    ref_words = statistics.median(len(str(e.get("reference") or "").split()) for e in examples)
    long = sum(len(a.split()) > RUNAWAY_FACTOR * ref_words for a in answers) if ref_words else 0
    problems = []
    if empty >= share:
        problems.append(f"{empty} of {len(answers)} answers are empty")
    if looping >= share:
        problems.append(f"{looping} repeat themselves in loops")
    if long >= share:
        problems.append(
            f"{long} run past {RUNAWAY_FACTOR:g}x the references' median of {ref_words:g} words"
        )
    if not problems:
        return None
    return Finding(
        "degenerate_outputs",
        f"Degenerate outputs: {'; '.join(problems)}.",
        "Check that the chat template ends each answer with its end-of-turn token "
        "(model.chat_template); then lower train.learning_rate (e.g. by half) or "
        "train.epochs if the answers loop, or train longer if they never stop.",
    )


_PRIMARY_TEXT = ("exact_match", "accuracy", "chrf", "bleu", "rouge1", "rouge2", "rougeL")


def _loops(answer: str) -> bool:
    words = answer.split()
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(trigrams) >= 10 and len(set(trigrams)) < REPEAT_DISTINCT * len(trigrams)


def _mean_near(points: list[tuple[int, float]], step: int, width: int = 5) -> float | None:
    """Mean train loss over the `width` logged steps up to `step` (one step's loss is noisy)."""
    near = [loss for s, loss in points if s <= step][-width:]
    return sum(near) / len(near) if near else None


def _longer(hyper: dict[str, Any]) -> str:
    max_steps, epochs = hyper.get("max_steps"), hyper.get("epochs")
    if max_steps:
        return f"train.max_steps: {2 * int(max_steps)}"
    if isinstance(epochs, int):
        return f"train.epochs: {2 * epochs}"
    return "more train.epochs"


def diagnose_run(config: Config, results: dict[str, Any]) -> list[dict[str, str]]:
    """`diagnose` on the run folder's training history and manifest, as metrics.json stores it."""
    from tunewright.files import read_jsonl
    from tunewright.runs import TRAIN, read_manifest, stage_dir, train_history

    path = train_history(config)
    history = list(read_jsonl(path)) if path.is_file() else []
    hyper = dict((read_manifest(stage_dir(config, TRAIN)) or {}).get("hyperparameters") or {})
    hyper["max_steps"] = config.train.max_steps
    return [f.as_dict() for f in diagnose(history, results, hyper)]
