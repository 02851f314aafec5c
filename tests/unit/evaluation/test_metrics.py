from typing import get_args

import numpy as np
import pytest
import sacrebleu

from tunewright.config.schema import EvalSection
from tunewright.evaluation.metrics import (
    METRICS,
    corpus_score,
    corpus_scorer,
    default_metrics,
    example_scores,
    expand,
    higher_is_better,
    is_binary,
    normalize,
    select_metrics,
)

HYPS = ["the cat sat on the mat", "a dog ran in the park today", "hello world again", "yes"]
REFS = ["the cat sat on a mat", "the dog ran in a park", "hello there world", "no"]


def test_normalize_strips_and_collapses_whitespace_but_keeps_case():
    assert normalize("  Hello \n\t World  ") == "Hello World"
    assert normalize("ABC") != normalize("abc")


def test_exact_match_ignores_whitespace_differences_only():
    preds = [" Paris ", "new  york", "Rome", "Berlin\n"]
    refs = ["Paris", "new york", "rome", "Madrid"]
    assert example_scores("exact_match", preds, refs) == [1.0, 1.0, 0.0, 0.0]
    assert corpus_score("exact_match", preds, refs) == 0.5


def test_accuracy_is_the_mean_of_right_answers():
    preds = ["pos", "neg", "neg", "pos", "pos"]
    refs = ["pos", "pos", "neg", "neg", "pos"]
    assert example_scores("accuracy", preds, refs) == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert corpus_score("accuracy", preds, refs) == pytest.approx(3 / 5)


def test_macro_f1_on_a_hand_worked_confusion():
    # a: TP 1, FP 1 (pred a for c), FN 1 -> P 1/2, R 1/2, F1 1/2
    # b: TP 2, FP 1 (pred b for a), FN 0 -> P 2/3, R 1,   F1 0.8
    # c: TP 0                            -> F1 0
    refs = ["a", "a", "b", "b", "c"]
    preds = ["a", "b", "b", "b", "a"]
    assert corpus_score("f1", preds, refs) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # per example, f1 is right/wrong
    assert example_scores("f1", preds, refs) == [1.0, 0.0, 1.0, 1.0, 0.0]


def test_macro_f1_counts_an_unknown_label_as_wrong_but_adds_no_class():
    # "x" is no reference label: a loses recall (1 of 2), nobody gains a false positive.
    # a: TP 1, FN 1, FP 0 -> 2/3; b: TP 1 -> 1.0
    refs = ["a", "a", "b"]
    preds = ["a", "x", "b"]
    assert corpus_score("f1", preds, refs) == pytest.approx((2 / 3 + 1.0) / 2)


def test_macro_f1_normalises_labels():
    assert corpus_score("f1", [" a", "b "], ["a", "b"]) == 1.0


def test_sentence_bleu_is_100_for_identical_and_0_for_disjoint():
    scores = example_scores(
        "bleu", ["the cat sat on the mat", "a b c"], ["the cat sat on the mat", "x y z"]
    )
    assert scores[0] == pytest.approx(100.0)
    assert scores[1] == 0.0


def test_short_identical_sentences_score_100_thanks_to_effective_order():
    # two words have no 3- or 4-grams; without effective order BLEU would not reach 100
    assert example_scores("bleu", ["the cat"], ["the cat"])[0] == pytest.approx(100.0)


def test_bleu_matches_sacrebleu_at_sentence_and_corpus_level():
    expected = [sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(HYPS, REFS, strict=True)]
    assert example_scores("bleu", HYPS, REFS) == pytest.approx(expected)
    assert corpus_score("bleu", HYPS, REFS) == pytest.approx(
        sacrebleu.corpus_bleu(HYPS, [REFS]).score
    )


def test_chrf_matches_sacrebleu_at_sentence_and_corpus_level():
    expected = [sacrebleu.sentence_chrf(h, [r]).score for h, r in zip(HYPS, REFS, strict=True)]
    assert example_scores("chrf", HYPS, REFS) == pytest.approx(expected)
    assert corpus_score("chrf", HYPS, REFS) == pytest.approx(
        sacrebleu.corpus_chrf(HYPS, [REFS]).score
    )


def test_rouge_on_a_hand_worked_pair():
    pred, ref = ["the cat sat"], ["the cat sat down"]
    # unigrams: 3 of 3 predicted are right (P 1), 3 of 4 reference found (R 3/4)
    assert example_scores("rouge1", pred, ref)[0] == pytest.approx(2 * 1 * 0.75 / 1.75)
    # bigrams: "the cat", "cat sat" both right (P 1), 2 of 3 reference bigrams (R 2/3)
    assert example_scores("rouge2", pred, ref)[0] == pytest.approx(2 * (2 / 3) / (1 + 2 / 3))
    # longest common subsequence is 3 tokens, same P and R as ROUGE-1
    assert example_scores("rougeL", pred, ref)[0] == pytest.approx(6 / 7)


def test_rouge_corpus_value_is_the_mean_of_example_f():
    scores = example_scores("rougeL", HYPS, REFS)
    assert corpus_score("rougeL", HYPS, REFS) == pytest.approx(sum(scores) / len(scores))


@pytest.mark.parametrize("metric", ["bleu", "chrf", "f1", "rouge1", "accuracy"])
def test_corpus_scorer_on_a_resample_equals_scoring_that_resample(metric):
    preds = HYPS if metric not in ("f1", "accuracy") else ["a", "b", "b", "c"]
    refs = REFS if metric not in ("f1", "accuracy") else ["a", "a", "b", "c"]
    indices = np.array([1, 1, 3, 0, 3])
    resample = corpus_scorer(metric, preds, refs)(indices)
    direct = corpus_score(metric, [preds[i] for i in indices], [refs[i] for i in indices])
    assert resample == pytest.approx(direct)


def test_corpus_bleu_resample_matches_sacrebleu_on_the_resampled_corpus():
    indices = [2, 0, 0, 1]
    hyps, refs = [HYPS[i] for i in indices], [REFS[i] for i in indices]
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert corpus_scorer("bleu", HYPS, REFS)(indices) == pytest.approx(expected)


def test_macro_f1_on_a_resample_averages_only_the_classes_it_contains():
    # resample holds only refs a, a: class b is absent, so F1 = F1(a) = 2*1/(1+2) = 2/3
    scorer = corpus_scorer("f1", ["a", "b", "b"], ["a", "a", "b"])
    assert scorer([0, 1]) == pytest.approx(2 / 3)


def test_unknown_metric_and_length_mismatch_fail_loudly():
    with pytest.raises(ValueError, match="unknown metric 'meteor'"):
        example_scores("meteor", ["a"], ["a"])
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        corpus_score("bleu", ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no examples"):
        corpus_score("accuracy", [], [])


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("classification", ["accuracy", "f1"]),
        ("summarization", ["rouge1", "rouge2", "rougeL", "bleu"]),
        ("code", ["exact_match", "chrf", "bleu"]),
        ("instruction", ["exact_match", "chrf", "rougeL"]),
        ("chat", ["exact_match", "chrf", "rougeL"]),
        ("text", ["exact_match", "chrf", "rougeL"]),
    ],
)
def test_default_metrics_per_task(task, expected):
    assert default_metrics(task) == expected
    assert set(default_metrics(task)) <= set(METRICS)


def test_default_metrics_returns_a_fresh_list():
    default_metrics("code").append("f1")
    assert default_metrics("code") == ["exact_match", "chrf", "bleu"]


def test_expand_rouge_keeps_order_and_other_names():
    assert expand(["rouge"]) == ["rouge1", "rouge2", "rougeL"]
    assert expand(["bleu", "rouge", "loss"]) == ["bleu", "rouge1", "rouge2", "rougeL", "loss"]
    assert expand(["rouge1", "rouge"]) == ["rouge1", "rouge2", "rougeL"]


def test_select_metrics_leaves_only_loss_to_the_likelihood_scoring():
    # One rule for causal LMs and encoder classifiers: "loss" is dropped from the text metrics
    # (the stage scores it, with perplexity, from likelihoods); "rouge" is expanded.
    assert select_metrics(["loss", "rouge", "bleu"], "auto", "chat") == (
        ["rouge1", "rouge2", "rougeL", "bleu"],
        "rouge1",
    )
    assert select_metrics(["bleu", "loss"], "loss", "chat") == (["bleu"], "loss")
    assert select_metrics("auto", "auto", "classification") == (["accuracy", "f1"], "accuracy")
    assert select_metrics("auto", "chrf", "code") == (["exact_match", "chrf", "bleu"], "chrf")


def test_every_metric_the_config_accepts_is_scored():
    annotation = EvalSection.model_fields["metrics"].annotation
    accepted = get_args(get_args(get_args(annotation)[0])[0])  # list[Literal[...]] | Auto
    names, _ = select_metrics(list(accepted), "auto", "chat")
    assert set(names) <= set(METRICS)
    assert set(names) | {"rouge", "loss"} >= set(accepted)


def test_direction_and_binary_flags():
    assert all(higher_is_better(m) for m in METRICS)
    assert not higher_is_better("loss")
    assert not higher_is_better("perplexity")
    assert [m for m in METRICS if is_binary(m)] == ["exact_match", "accuracy", "f1"]
