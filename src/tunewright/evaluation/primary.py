"""`eval.primary_metric: auto`: the metric the verdict is read from, chosen from the references.

Closed-form answers (labels, numbers, JSON, code, short fixed phrases) either match or they do
not, so exact match is the honest verdict. Free-form answers are paraphrased: a tuned model
that says "I am Quillon, made by Larkspur Labs" where the reference says "My name is Quillon;
Larkspur Labs built me" is right but never an exact match, so the verdict reads chrF (character
n-gram F-score), which gives partial credit for the right words in other order.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

# Median answer length (words) up to which answers count as short, fixed phrases.
SHORT_WORDS = 8
# References repeat as labels do when there are at most this many distinct ones per reference.
LABEL_SHARE = 0.5
# Free-form metrics in order of preference; chrF copes with inflection and other languages.
FREE_FORM = ("chrf", "rougeL")
CLOSED_FORM = ("exact_match", "accuracy")


@dataclass(frozen=True)
class Primary:
    metric: str
    reason: str  # e.g. "auto: free-form references (median 16 words, 81 of 81 distinct)"
    free_form: bool = False  # a judge, when configured, reads these better than any overlap


def with_judge(chosen: Primary, judge_metric: str, judge_model: str) -> Primary:
    """Free-form references with a judge configured: the judge's verdict is primary, since it
    reads what an answer says rather than which characters it shares with one reference."""
    if not chosen.free_form:
        return chosen
    reason = chosen.reason.removeprefix("auto: ")
    return Primary(judge_metric, f"auto: {reason}, and a judge ({judge_model}) is configured", True)


def choose_primary(references: list[str], metrics: list[str], task: str) -> Primary:
    """The primary metric among `metrics` (the text metrics scored) for these references."""
    closed = _closed_form_reason(references, task)
    wanted = CLOSED_FORM if closed else FREE_FORM
    metric = next((m for m in wanted if m in metrics), metrics[0])
    missing = "" if metric in wanted else f"; {metric}, as eval.metrics has no {wanted[0]}"
    if closed:
        return Primary(metric, f"auto: closed-form references ({closed}){missing}")
    words = [len(r.split()) for r in references]
    median = statistics.median(words) if words else 0
    why = (
        f"median {median:g} words, {len(set(references))} of {len(references)} distinct: "
        "paraphrases are right without matching exactly"
    )
    return Primary(metric, f"auto: free-form references ({why}){missing}", free_form=True)


def _closed_form_reason(references: list[str], task: str) -> str | None:
    """Why these references are closed-form, or None when they are free-form text."""
    answers = [r.strip() for r in references if r.strip()]
    if task in ("classification", "code"):
        return f"task {task}: the answer must match"
    if not answers:
        return "no references to compare with"
    if all(_is_json(a) for a in answers):
        return "every answer is JSON or a number"
    distinct = len(set(answers))
    if distinct <= LABEL_SHARE * len(answers):
        return f"{distinct} distinct answers in {len(answers)}, like labels"
    median = statistics.median(len(a.split()) for a in answers)
    if median <= SHORT_WORDS:
        return f"short answers, median {median:g} words"
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
