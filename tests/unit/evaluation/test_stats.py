import math

import numpy as np
import pytest

from tunewright.evaluation.stats import (
    Comparison,
    compare,
    mcnemar,
    paired_bootstrap,
    paired_bootstrap_means,
    sign_test,
    verdict,
    wilcoxon_test,
)


def outcomes(both: int, base_only: int, tuned_only: int, neither: int) -> tuple[list, list]:
    """Paired right/wrong lists with the given counts in each cell of the 2x2 table."""
    base = [True] * both + [True] * base_only + [False] * tuned_only + [False] * neither
    tuned = [True] * both + [False] * base_only + [True] * tuned_only + [False] * neither
    return base, tuned


# --- McNemar -------------------------------------------------------------------------------


def test_mcnemar_exact_when_all_discordant_pairs_favour_tuned():
    base, tuned = outcomes(both=7, base_only=0, tuned_only=10, neither=3)
    # b = 0, c = 10: P(all 10 on one side) twice (two-sided) = 2 * 0.5**10
    assert mcnemar(base, tuned) == pytest.approx(0.001953125)
    assert mcnemar(tuned, base) == pytest.approx(0.001953125)


def test_mcnemar_is_1_when_discordant_pairs_balance_or_are_absent():
    assert mcnemar(*outcomes(both=4, base_only=6, tuned_only=6, neither=2)) == 1.0
    assert mcnemar(*outcomes(both=4, base_only=0, tuned_only=0, neither=2)) == 1.0


def test_mcnemar_chi_square_branch_with_continuity_correction():
    base, tuned = outcomes(both=20, base_only=5, tuned_only=25, neither=10)
    chi2 = (abs(5 - 25) - 1) ** 2 / (5 + 25)  # 361 / 30 = 12.033
    # chi-square with 1 dof is the square of a standard normal: sf(x) = erfc(sqrt(x / 2))
    assert mcnemar(base, tuned) == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))
    assert mcnemar(base, tuned) == pytest.approx(0.000522, abs=1e-6)


def test_mcnemar_exact_branch_just_below_25_discordant_pairs():
    # b = 4, c = 20 (24 pairs): two-sided exact = 2 * sum_{k<=4} C(24, k) / 2**24
    expected = 2 * sum(math.comb(24, k) for k in range(5)) / 2**24
    assert mcnemar(*outcomes(both=0, base_only=4, tuned_only=20, neither=0)) == pytest.approx(
        expected
    )


# --- sign and Wilcoxon tests -----------------------------------------------------------------


def test_sign_test_eight_wins_no_losses_ties_ignored():
    base = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.5, 0.5]
    tuned = [b + 0.1 for b in base[:8]] + [0.5, 0.5]
    assert sign_test(base, tuned) == pytest.approx(2 * 0.5**8)


def test_sign_test_all_tied_is_1():
    assert sign_test([1.0, 2.0], [1.0, 2.0]) == 1.0


def test_wilcoxon_exact_when_every_difference_is_positive():
    # 10 distinct positive differences: W- = 0 has probability 1 / 2**10; two-sided doubles it.
    # The zero difference is dropped (zero_method="wilcox").
    base = [0.0] * 11
    tuned = [float(d) for d in range(1, 11)] + [0.0]
    assert wilcoxon_test(base, tuned) == pytest.approx(2 / 2**10)


def test_wilcoxon_all_zero_differences_is_1():
    assert wilcoxon_test([0.3, 0.4, 0.5], [0.3, 0.4, 0.5]) == 1.0


# --- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_identical_systems_give_zero_and_a_zero_width_ci():
    scores = np.random.default_rng(1).uniform(0, 1, size=200)
    assert paired_bootstrap_means(scores, scores) == (0.0, 0.0, 0.0)


def test_bootstrap_constant_improvement_gives_exactly_that_ci():
    # quarters are exact in binary floating point, so tuned - base is exactly 1.0 everywhere
    base = np.random.default_rng(2).integers(0, 40, size=300) / 4
    assert paired_bootstrap_means(base, base + 1.0) == (1.0, 1.0, 1.0)


def test_bootstrap_clear_improvement_excludes_zero_and_is_deterministic_per_seed():
    rng = np.random.default_rng(3)
    base = rng.normal(0.5, 0.2, size=100)
    tuned = base + rng.normal(0.1, 0.05, size=100)
    observed, low, high = paired_bootstrap_means(base, tuned, seed=7)
    assert observed == pytest.approx(np.mean(tuned - base))
    assert 0 < low < observed < high
    assert paired_bootstrap_means(base, tuned, seed=7) == (observed, low, high)
    assert paired_bootstrap_means(base, tuned, seed=8) != (observed, low, high)


def test_bootstrap_noise_without_effect_keeps_zero_in_the_ci():
    rng = np.random.default_rng(4)
    base = rng.uniform(0, 1, size=60)
    signs = rng.permutation([1.0] * 30 + [-1.0] * 30)  # as many losses as wins
    tuned = base + signs * rng.uniform(0.05, 0.3, size=60)
    observed, low, high = paired_bootstrap_means(base, tuned)
    assert low < 0 < high
    assert low < observed < high


def test_generic_bootstrap_of_a_mean_matches_the_vectorised_path():
    rng = np.random.default_rng(5)
    base = rng.uniform(0, 1, size=50)
    tuned = base + rng.normal(0.05, 0.1, size=50)
    generic = paired_bootstrap(50, lambda i: base[i].mean(), lambda i: tuned[i].mean(), seed=3)
    assert generic == pytest.approx(paired_bootstrap_means(base, tuned, seed=3))


def test_generic_bootstrap_passes_the_same_indices_to_both_systems():
    seen: dict[str, list] = {"base": [], "tuned": []}

    def recorder(side: str):
        def corpus(indices: np.ndarray) -> float:
            seen[side].append(indices.copy())
            return float(len(indices))

        return corpus

    paired_bootstrap(7, recorder("base"), recorder("tuned"), samples=20)
    assert len(seen["base"]) == 21  # the full set once, then 20 resamples
    assert all(np.array_equal(b, t) for b, t in zip(seen["base"], seen["tuned"], strict=True))
    assert np.array_equal(seen["base"][0], np.arange(7))


def test_generic_bootstrap_handles_a_corpus_metric_that_is_not_a_mean():
    # corpus value = max over the resample: tuned's maximum example is always 1 higher
    base = np.array([1.0, 5.0, 3.0, 2.0])
    tuned = base + 1.0
    result = paired_bootstrap(4, lambda i: base[i].max(), lambda i: tuned[i].max())
    assert result == (1.0, 1.0, 1.0)


def test_bootstrap_confidence_widens_the_interval():
    rng = np.random.default_rng(6)
    base, tuned = rng.uniform(size=80), rng.uniform(size=80)
    _, low90, high90 = paired_bootstrap_means(base, tuned, confidence=0.90)
    _, low99, high99 = paired_bootstrap_means(base, tuned, confidence=0.99)
    assert low99 < low90 < high90 < high99


def test_bootstrap_of_a_large_eval_set_is_fast_enough_to_run_in_tests():
    # 1000 resamples of 5000 examples spans two index batches; just check it completes sanely
    rng = np.random.default_rng(7)
    base = rng.uniform(size=5000)
    observed, low, high = paired_bootstrap_means(base, base + 0.5, samples=1000)
    assert observed == low == high == pytest.approx(0.5)


def test_bootstrap_rejects_mismatched_or_empty_inputs():
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap_means([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one example"):
        paired_bootstrap_means([], [])
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap_means([1.0, math.nan], [1.0, 2.0])


# --- verdict ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "p", "higher", "expected"),
    [
        (0.1, 0.3, 0.01, True, "better"),
        (-0.3, -0.1, 0.01, True, "worse"),
        (-0.1, 0.3, 0.01, True, "no significant change"),  # CI holds 0
        (0.1, 0.3, 0.20, True, "no significant change"),  # test not significant
        (0.0, 0.3, 0.01, True, "no significant change"),  # CI touches 0
        (0.1, 0.3, 0.01, False, "worse"),  # loss went up
        (-0.3, -0.1, 0.01, False, "better"),  # loss went down
        (math.nan, math.nan, 0.01, True, "no significant change"),
        (0.1, 0.3, math.nan, True, "no significant change"),
    ],
)
def test_verdict(low, high, p, higher, expected):
    assert verdict(low, high, p, higher_is_better=higher) == expected


def test_verdict_alpha_is_strict():
    assert verdict(0.1, 0.2, 0.05) == "no significant change"
    assert verdict(0.1, 0.2, 0.05, alpha=0.1) == "better"


# --- compare ---------------------------------------------------------------------------------


def test_compare_binary_metric_uses_mcnemar():
    base, tuned = outcomes(both=5, base_only=0, tuned_only=10, neither=5)
    base_scores = [float(x) for x in base]
    tuned_scores = [float(x) for x in tuned]
    result = compare("accuracy", base_scores, tuned_scores, 0.25, 0.75, binary=True)
    assert isinstance(result, Comparison)
    assert result.test == "mcnemar"
    assert result.p_value == pytest.approx(0.001953125)
    assert result.diff == pytest.approx(0.5)
    assert 0 < result.ci_low <= 0.5 <= result.ci_high <= 1
    assert result.verdict == "better"
    assert result.as_dict() == {
        "metric": "accuracy",
        "base": 0.25,
        "tuned": 0.75,
        "diff": 0.5,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "test": "mcnemar",
        "p_value": result.p_value,
        "verdict": "better",
    }


def test_compare_binary_rejects_scores_that_are_not_0_or_1():
    with pytest.raises(ValueError, match=r"0\.0 or 1\.0"):
        compare("accuracy", [0.5, 1.0], [1.0, 1.0], 0.75, 1.0, binary=True)


def test_compare_continuous_metric_uses_wilcoxon_and_flags_a_drop():
    rng = np.random.default_rng(8)
    base = rng.uniform(0.3, 0.9, size=40)
    tuned = base - rng.uniform(0.05, 0.2, size=40)  # every example got worse
    result = compare("rougeL", list(base), list(tuned), base.mean(), tuned.mean(), binary=False)
    assert result.test == "wilcoxon"
    assert result.p_value < 1e-6
    assert result.ci_high < 0
    assert result.verdict == "worse"


def test_compare_falls_back_to_the_sign_test_with_few_changed_examples():
    base = [10.0] * 20
    tuned = [12.0] * 6 + [10.0] * 14  # 6 non-zero differences, all wins
    result = compare("chrf", base, tuned, 10.0, 10.6, binary=False)
    assert result.test == "sign"
    assert result.p_value == pytest.approx(2 * 0.5**6)
    assert result.verdict == "better"


def test_compare_with_no_effect_reports_no_significant_change():
    rng = np.random.default_rng(9)
    base = rng.uniform(0, 1, size=50)
    tuned = base + rng.permutation([0.1] * 25 + [-0.1] * 25)
    result = compare("chrf", list(base), list(tuned), base.mean(), tuned.mean(), binary=False)
    assert result.test == "wilcoxon"
    assert result.ci_low < 0 < result.ci_high
    assert result.verdict == "no significant change"


def test_compare_bootstraps_the_corpus_metric_through_corpus_fn():
    # corpus metric = sum of sides' stats ratio, a stand-in for pooled BLEU counts
    matches = {
        "base": np.array([1.0, 2.0, 1.0, 3.0] * 5),
        "tuned": np.array([3.0, 4.0, 2.0, 4.0] * 5),
    }
    totals = np.array([4.0, 4.0, 2.0, 5.0] * 5)
    calls: list[str] = []

    def corpus_fn(indices: np.ndarray, side: str) -> float:
        calls.append(side)
        return float(matches[side][indices].sum() / totals[indices].sum())

    everything = np.arange(20)
    base_value, tuned_value = corpus_fn(everything, "base"), corpus_fn(everything, "tuned")
    result = compare(
        "bleu",
        list(matches["base"] / totals),
        list(matches["tuned"] / totals),
        base_value,
        tuned_value,
        binary=False,
        corpus_fn=corpus_fn,
        samples=200,
    )
    assert (
        calls.count("base") == calls.count("tuned") == 1 + 1 + 200
    )  # ours, the observed value, resamples
    assert result.diff == pytest.approx(tuned_value - base_value)
    assert 0 < result.ci_low <= result.diff <= result.ci_high
    assert result.verdict == "better"


def test_compare_lower_is_better_flips_the_verdict():
    base = [2.0 + 0.01 * i for i in range(30)]
    tuned = [b - 0.5 for b in base]
    result = compare("loss", base, tuned, 2.145, 1.645, binary=False, higher_is_better=False)
    assert result.verdict == "better"
