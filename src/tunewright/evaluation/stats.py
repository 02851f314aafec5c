"""Paired statistics for base-vs-tuned comparisons on the same held-out examples.

Both models answer the same prompts, so every test here is paired: the bootstrap resamples
example indices once and scores both systems on the same resample, and the significance tests
look at per-example differences. Pairing removes the between-example variance (easy and hard
prompts) that would otherwise swamp a small real difference.

A change is called significant only when the bootstrap CI of (tuned − base) excludes zero AND
the paired test gives p < alpha: the CI speaks about the corpus metric itself (which for BLEU or
macro-F1 is not a mean), the test about how consistently examples moved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Side = Literal["base", "tuned"]
Verdict = Literal["better", "no significant change", "worse"]

# Resampled indices are drawn in batches of at most this many (32 MiB of int64), so a large
# eval set does not need samples x n indices in memory at once.
_BATCH_ELEMENTS = 1 << 22
# Below this many non-zero differences compare() uses the sign test instead of Wilcoxon.
MIN_WILCOXON_PAIRS = 10
# McNemar: below this many discordant pairs the chi-square approximation is poor; use exact.
MCNEMAR_EXACT_BELOW = 25


@dataclass
class Comparison:
    """One metric, base vs tuned: corpus values, the bootstrap CI of tuned − base, the paired
    test and its p-value, and the verdict that combines them."""

    metric: str
    base: float
    tuned: float
    diff: float
    ci_low: float
    ci_high: float
    test: str  # "mcnemar" | "wilcoxon" | "sign"
    p_value: float
    verdict: str  # "better" | "no significant change" | "worse"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def compare(
    metric: str,
    base_scores: Sequence[float],
    tuned_scores: Sequence[float],
    base_value: float,
    tuned_value: float,
    *,
    binary: bool,
    corpus_fn: Callable[[np.ndarray, Side], float] | None = None,
    higher_is_better: bool = True,
    samples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare one metric between base and tuned.

    `base_scores`/`tuned_scores` are per-example scores in the same example order;
    `base_value`/`tuned_value` the corpus values reported. `corpus_fn(indices, side)` recomputes
    the corpus metric on a resample (needed when it is not a mean: BLEU, chrF, macro-F1; see
    metrics.corpus_scorer); without it the bootstrap resamples the mean of per-example scores.

    The test: McNemar when scores are right/wrong (`binary`); otherwise the Wilcoxon signed-rank
    test, or the sign test when fewer than MIN_WILCOXON_PAIRS examples changed score, since with
    so few pairs the ranks carry little information and Wilcoxon's assumption that differences
    are symmetric cannot be checked, while the sign test assumes nothing about their shape."""
    base, tuned = _paired_arrays(base_scores, tuned_scores)
    if corpus_fn is None:
        _, low, high = paired_bootstrap_means(base, tuned, samples=samples, seed=seed)
    else:
        _, low, high = paired_bootstrap(
            len(base),
            lambda indices: corpus_fn(indices, "base"),
            lambda indices: corpus_fn(indices, "tuned"),
            samples=samples,
            seed=seed,
        )
    test, p_value = _paired_test(base, tuned, binary)
    return Comparison(
        metric=metric,
        base=float(base_value),
        tuned=float(tuned_value),
        diff=float(tuned_value - base_value),
        ci_low=low,
        ci_high=high,
        test=test,
        p_value=p_value,
        verdict=verdict(low, high, p_value, higher_is_better=higher_is_better),
    )


def verdict(
    ci_low: float,
    ci_high: float,
    p_value: float,
    higher_is_better: bool = True,
    alpha: float = 0.05,
) -> Verdict:
    """ "better"/"worse" only when the CI of tuned − base excludes 0 and p < alpha; the sign of
    the CI says which, flipped for metrics where lower is better (loss). NaNs are never
    significant."""
    excludes_zero = ci_low > 0 or ci_high < 0
    if not (excludes_zero and p_value < alpha):
        return "no significant change"
    went_up = ci_low > 0
    return "better" if went_up == higher_is_better else "worse"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Testing many slices at once, some would reach p < 0.05 by chance alone; Holm's step-down
    adjustment keeps the chance of any false "significant" at alpha across the family, and is
    uniformly more powerful than plain Bonferroni. The k-th smallest p is multiplied by
    (m - k + 1), and adjusted values are made non-decreasing in that order, capped at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def paired_bootstrap(
    n: int,
    base_fn: Callable[[np.ndarray], float],
    tuned_fn: Callable[[np.ndarray], float],
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(observed tuned − base on all n examples, CI low, CI high).

    Each resample draws n example indices with replacement and scores both systems on the same
    indices; the CI is the percentile interval of the resampled differences. `base_fn`/
    `tuned_fn` get an index array and return the corpus metric on those examples. For a plain
    mean of per-example scores use the vectorised `paired_bootstrap_means`; both draw the same
    resamples for a seed."""
    _check_bootstrap(n, samples, confidence)
    everything = np.arange(n)
    observed = float(tuned_fn(everything) - base_fn(everything))
    diffs = np.array(
        [
            tuned_fn(indices) - base_fn(indices)
            for batch in _resamples(n, samples, seed)
            for indices in batch
        ],
        dtype=float,
    )
    low, high = _percentile_interval(diffs, confidence)
    return observed, low, high


def paired_bootstrap_means(
    base_scores: Sequence[float] | np.ndarray,
    tuned_scores: Sequence[float] | np.ndarray,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """`paired_bootstrap` for corpus value = mean of per-example scores, vectorised: the mean of
    the resampled per-example differences (1000 x 1000 examples in a few milliseconds)."""
    base, tuned = _paired_arrays(base_scores, tuned_scores)
    _check_bootstrap(len(base), samples, confidence)
    diff = tuned - base
    resampled = np.concatenate(
        [diff[batch].mean(axis=1) for batch in _resamples(len(diff), samples, seed)]
    )
    low, high = _percentile_interval(resampled, confidence)
    return float(diff.mean()), low, high


def mcnemar(base_correct: Sequence[bool], tuned_correct: Sequence[bool]) -> float:
    """Two-sided McNemar p-value on paired right/wrong outcomes.

    Only discordant pairs count: b = base right and tuned wrong, c = the reverse. Under no change
    each is equally likely, so c ~ Binomial(b + c, 1/2): exact when b + c < MCNEMAR_EXACT_BELOW,
    else chi-square (1 dof) with continuity correction, (|b − c| − 1)² / (b + c)."""
    from scipy import stats

    base, tuned = _paired_arrays(base_correct, tuned_correct, dtype=bool)
    b = int(np.sum(base & ~tuned))
    c = int(np.sum(~base & tuned))
    if b + c == 0:
        return 1.0
    if b + c < MCNEMAR_EXACT_BELOW:
        return _binomial_two_sided(c, b + c)
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    return float(stats.chi2.sf(chi2, df=1))


def sign_test(
    base_scores: Sequence[float] | np.ndarray, tuned_scores: Sequence[float] | np.ndarray
) -> float:
    """Two-sided exact sign test: ties dropped, wins ~ Binomial(wins + losses, 1/2)."""
    base, tuned = _paired_arrays(base_scores, tuned_scores)
    wins = int(np.sum(tuned > base))
    losses = int(np.sum(tuned < base))
    if wins + losses == 0:
        return 1.0
    return _binomial_two_sided(wins, wins + losses)


def wilcoxon_test(
    base_scores: Sequence[float] | np.ndarray, tuned_scores: Sequence[float] | np.ndarray
) -> float:
    """Two-sided Wilcoxon signed-rank p-value; zero differences are dropped ("wilcox")."""
    from scipy import stats

    base, tuned = _paired_arrays(base_scores, tuned_scores)
    if np.all(tuned == base):
        return 1.0  # scipy raises: there is nothing to rank
    result = stats.wilcoxon(tuned, base, zero_method="wilcox", alternative="two-sided")
    return float(result.pvalue)


def _paired_test(base: np.ndarray, tuned: np.ndarray, binary: bool) -> tuple[str, float]:
    if binary:
        if not np.all(np.isin(base, (0.0, 1.0)) & np.isin(tuned, (0.0, 1.0))):
            raise ValueError("binary=True needs per-example scores of 0.0 or 1.0")
        return "mcnemar", mcnemar(base == 1.0, tuned == 1.0)
    if np.count_nonzero(tuned != base) < MIN_WILCOXON_PAIRS:
        return "sign", sign_test(base, tuned)
    return "wilcoxon", wilcoxon_test(base, tuned)


def _binomial_two_sided(successes: int, trials: int) -> float:
    from scipy import stats

    return float(stats.binomtest(successes, trials, p=0.5, alternative="two-sided").pvalue)


def _resamples(n: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of resampled index rows, samples rows in all, from one seeded generator."""
    rng = np.random.default_rng(seed)
    rows = max(1, _BATCH_ELEMENTS // n)
    for start in range(0, samples, rows):
        yield rng.integers(0, n, size=(min(rows, samples - start), n))


def _percentile_interval(diffs: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return float(low), float(high)


def _check_bootstrap(n: int, samples: int, confidence: float) -> None:
    if n < 1:
        raise ValueError("bootstrap needs at least one example")
    if samples < 1:
        raise ValueError(f"bootstrap samples must be positive, got {samples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _paired_arrays(
    base: Sequence[float] | Sequence[bool] | np.ndarray,
    tuned: Sequence[float] | Sequence[bool] | np.ndarray,
    dtype: type = float,
) -> tuple[np.ndarray, np.ndarray]:
    base_array = np.asarray(base, dtype=dtype)
    tuned_array = np.asarray(tuned, dtype=dtype)
    if base_array.shape != tuned_array.shape or base_array.ndim != 1:
        raise ValueError(
            f"paired scores need two flat lists of equal length, got shapes "
            f"{base_array.shape} and {tuned_array.shape}"
        )
    if dtype is float and not (
        np.all(np.isfinite(base_array)) and np.all(np.isfinite(tuned_array))
    ):
        raise ValueError("paired scores must be finite numbers")
    return base_array, tuned_array
