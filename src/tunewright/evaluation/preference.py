"""Preference accuracy: on each held-out pair, does the model give the chosen answer a higher
mean per-token log-likelihood than the rejected one? Scored for base and tuned alike, compared
with the paired test and interval every other metric gets (right/wrong per pair: McNemar).

Mean per token, not the sum: a sum favours the shorter answer whatever the model prefers.
A tie (equal means, e.g. two answers of identical tokens) counts as wrong."""

from __future__ import annotations

from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record, sides

METRIC = "preference_accuracy"


def pair_scores(model: Any, tokenizer: Any, records: list[Record], max_seq_len: int) -> list[float]:
    """1.0 where the chosen answer's mean token log-likelihood beats the rejected one's."""
    from tunewright.evaluation.loss import example_losses

    scores = []
    for record in records:
        (_, chosen), (_, rejected) = sides(record)
        (loss_c, n_c), (loss_r, n_r) = example_losses(
            model, tokenizer, [chosen, rejected], max_seq_len
        )
        if not n_c or not n_r:  # an answer with no tokens left after truncation: no verdict
            scores.append(0.0)
            continue
        scores.append(float(loss_c / n_c < loss_r / n_r))
    return scores


def compare_preference_accuracy(models: Any, records: list[Record], config: Config) -> dict:
    """The `preference_accuracy` row of the report, base against tuned."""
    from tunewright.evaluation.stats import compare

    scores = {
        which: models.run(
            which,
            lambda model: pair_scores(model, models.tokenizer, records, config.data.max_seq_len),
        )
        for which in ("base", "tuned")
    }
    comparison = compare(
        METRIC,
        scores["base"],
        scores["tuned"],
        sum(scores["base"]) / len(records),
        sum(scores["tuned"]) / len(records),
        binary=True,
        higher_is_better=True,
        samples=config.eval.bootstrap_samples,
        seed=config.seed,
    )
    return {**comparison.as_dict(), "higher_is_better": True}
