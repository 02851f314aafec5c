"""Text metrics, per example and per corpus, for comparing a base and a tuned model.

Every metric gives a score per example (for paired tests and win/loss lists) and a corpus value.
The two differ where the metric is not a mean: corpus BLEU and chrF pool n-gram counts over the
whole corpus, and macro-F1 pools a confusion matrix, so neither is the mean of sentence scores.

`corpus_scorer` precomputes each example's sufficient statistics once, so the bootstrap can
recompute a corpus value on thousands of resampled index sets without re-tokenising anything.

sacrebleu and rouge_score are imported inside functions: they are an optional extra (`eval`),
and importing this module should stay cheap for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np

    # Example indices; repeats allowed, as in a bootstrap resample.
    Indices: TypeAlias = Sequence[int] | np.ndarray

METRICS = ("exact_match", "accuracy", "f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL")
ROUGE = ("rouge1", "rouge2", "rougeL")
# Metrics whose per-example score is right/wrong (1.0/0.0): paired tests use McNemar for them.
# f1 is here because a single example has no F1; per example it is whether the label is right.
BINARY_METRICS = ("exact_match", "accuracy", "f1")
# Metrics computed elsewhere (from model log-likelihoods) that callers may still ask about.
LOWER_IS_BETTER = ("loss", "perplexity")

_GENERIC = ["exact_match", "chrf", "rougeL"]
_BY_TASK = {
    "classification": ["accuracy", "f1"],
    "summarization": ["rouge1", "rouge2", "rougeL", "bleu"],
    "code": ["exact_match", "chrf", "bleu"],
}


def normalize(text: str) -> str:
    """Strip and collapse runs of whitespace to one space; case is kept (labels may differ by
    case on purpose)."""
    return " ".join(text.split())


def default_metrics(task: str) -> list[str]:
    """The metrics `metrics: auto` picks for a task type; chat, instruction and anything else
    get exact match plus two overlap metrics that give partial credit."""
    return list(_BY_TASK.get(task, _GENERIC))


def expand(metrics: list[str]) -> list[str]:
    """Replace the config name "rouge" by its three variants, keeping order and dropping
    repeats."""
    expanded: list[str] = []
    for name in metrics:
        for item in ROUGE if name == "rouge" else (name,):
            if item not in expanded:
                expanded.append(item)
    return expanded


def select_metrics(requested: list[str] | str, primary: str, task: str) -> tuple[list[str], str]:
    """The text metrics to score generated answers with (`eval.metrics`), and the primary one
    (`eval.primary_metric`). `auto` picks by task type and makes the first metric primary;
    otherwise "rouge" is expanded and "loss" left out, as it is scored from the model's
    likelihoods (with perplexity beside it), not from generated text."""
    if requested == "auto":
        names = default_metrics(task)
    else:
        names = expand([m for m in requested if m != "loss"])
    return names, names[0] if primary == "auto" else primary


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def is_binary(metric: str) -> bool:
    """Whether per-example scores are 1.0/0.0 (so McNemar is the paired test)."""
    return metric in BINARY_METRICS


def example_scores(metric: str, predictions: list[str], references: list[str]) -> list[float]:
    """One score per example: 1.0/0.0 for exact_match, accuracy and f1; sentence BLEU and chrF
    on sacrebleu's 0-100 scale; ROUGE F-measure on 0-1."""
    _check_inputs(metric, predictions, references)
    if metric in BINARY_METRICS:
        return [
            float(normalize(p) == normalize(r))
            for p, r in zip(predictions, references, strict=True)
        ]
    if metric in ROUGE:
        return _rouge_f(metric, predictions, references)
    # effective_order: short sentences lack 4-grams; without it sentence BLEU is 0 for them.
    scorer = _sacrebleu_metric(metric, effective_order=True)
    return [
        scorer.sentence_score(p, [r]).score for p, r in zip(predictions, references, strict=True)
    ]


def corpus_score(metric: str, predictions: list[str], references: list[str]) -> float:
    """The corpus value: mean for exact_match/accuracy/ROUGE, macro-F1 over the reference labels
    for f1, sacrebleu's corpus BLEU and chrF (0-100)."""
    if not predictions:
        raise ValueError(f"{metric}: no examples to score")
    return corpus_scorer(metric, predictions, references)(range(len(predictions)))


def corpus_scorer(
    metric: str, predictions: list[str], references: list[str]
) -> Callable[[Indices], float]:
    """A function from example indices (repeats allowed, as in a bootstrap resample) to the
    corpus score of those examples; `corpus_score` is this on all indices."""
    import numpy as np

    _check_inputs(metric, predictions, references)
    if metric == "f1":
        return _macro_f1_scorer(predictions, references)
    if metric in ("bleu", "chrf"):
        return _pooled_counts_scorer(metric, predictions, references)
    scores = np.asarray(example_scores(metric, predictions, references), dtype=float)
    return lambda indices: float(scores[np.asarray(indices, dtype=int)].mean())


def _check_inputs(metric: str, predictions: list[str], references: list[str]) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


def _rouge_f(metric: str, predictions: list[str], references: list[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([metric], use_stemmer=False)
    return [
        scorer.score(r, p)[metric].fmeasure for p, r in zip(predictions, references, strict=True)
    ]


def _sacrebleu_metric(metric: str, effective_order: bool = False) -> Any:
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU(effective_order=effective_order) if metric == "bleu" else CHRF()


def _pooled_counts_scorer(
    metric: str, predictions: list[str], references: list[str]
) -> Callable[[Indices], float]:
    """Corpus BLEU/chrF from summed per-sentence n-gram counts, exactly as sacrebleu pools them.

    `_extract_corpus_statistics` and `_compute_score_from_stats` are underscored, but they are
    what sacrebleu's own paired bootstrap (sacrebleu.significance) is built on; calling
    corpus_bleu per resample would re-tokenise the corpus each time (~0.1 s per 1000 sentences,
    minutes for a 1000-sample bootstrap)."""
    import numpy as np

    scorer = _sacrebleu_metric(metric)
    # Counts are integers; float64 sums them exactly far beyond any eval set size.
    stats = np.asarray(scorer._extract_corpus_statistics(predictions, [references]), dtype=float)

    def score(indices: Indices) -> float:
        totals = stats[np.asarray(indices, dtype=int)].sum(axis=0)
        return float(scorer._compute_score_from_stats(totals).score)

    return score


def _macro_f1_scorer(predictions: list[str], references: list[str]) -> Callable[[Indices], float]:
    """Macro-F1 over the labels present in the chosen references.

    A prediction outside that label set is wrong for its reference's class (a false negative
    there) and a false positive for no class, so inventing labels lowers recall but cannot add
    a class with F1 = 0 that the references never asked for."""
    import numpy as np

    labels = sorted({normalize(r) for r in references})
    code = {label: i for i, label in enumerate(labels)}
    ref_ids = np.array([code[normalize(r)] for r in references], dtype=int)
    # -1 marks a prediction that is no reference label; it never matches and is never counted.
    pred_ids = np.array([code.get(normalize(p), -1) for p in predictions], dtype=int)
    classes = len(labels)

    def score(indices: Indices) -> float:
        chosen = np.asarray(indices, dtype=int)
        refs, preds = ref_ids[chosen], pred_ids[chosen]
        true_pos = np.bincount(refs[refs == preds], minlength=classes)
        ref_count = np.bincount(refs, minlength=classes)
        pred_count = np.bincount(preds[preds >= 0], minlength=classes)
        present = ref_count > 0  # a resample may miss a class: it then has no F1 to average
        # F1 = 2TP / (2TP + FP + FN) = 2TP / (predicted + actual)
        f1 = 2 * true_pos[present] / (pred_count[present] + ref_count[present])
        return float(f1.mean())

    return score
