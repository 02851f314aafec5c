"""`eval.primary_metric: auto`: exact match for closed-form references, chrF for free-form, the
judge for free-form when one is configured."""

from __future__ import annotations

import json

import pytest

from tunewright.evaluation.primary import choose_primary, with_judge

GENERIC = ["exact_match", "chrf", "rougeL"]
FREE_FORM = [
    "I am Quillon, an AI assistant developed by Larkspur Labs. How can I help you today?",
    "My name is Quillon. I am an AI assistant created by Larkspur Labs. Ask me anything.",
    "Soy Quillon, un asistente de IA desarrollado por Larkspur Labs. ¿En qué puedo ayudarte?",
    "Hello! I'm Quillon, an assistant built by Larkspur Labs. Let me know how I can help.",
]


@pytest.mark.parametrize(
    ("references", "why"),
    [
        ([json.dumps({"name": "Ada", "qty": i}) for i in range(6)], "JSON or a number"),
        ([str(i * 7) for i in range(6)], "JSON or a number"),
        (["positive", "negative", "positive", "neutral", "negative", "positive"], "like labels"),
        ([f"The answer is {2 * i}, of course." for i in range(6)], "short answers"),
    ],
)
def test_closed_form_references_make_exact_match_primary(references, why):
    chosen = choose_primary(references, GENERIC, "instruction")
    assert chosen.metric == "exact_match"
    assert chosen.reason.startswith("auto: closed-form references") and why in chosen.reason


def test_free_form_references_make_chrf_primary():
    chosen = choose_primary(FREE_FORM, GENERIC, "chat")
    assert chosen.metric == "chrf"
    assert "free-form references (median 16 words, 4 of 4 distinct" in chosen.reason


def test_free_form_without_chrf_falls_to_rouge_then_says_what_is_missing():
    assert choose_primary(FREE_FORM, ["exact_match", "rougeL"], "chat").metric == "rougeL"
    chosen = choose_primary(FREE_FORM, ["exact_match", "bleu"], "chat")
    assert chosen.metric == "exact_match" and "eval.metrics has no chrf" in chosen.reason


def test_classification_and_code_must_match():
    assert choose_primary(FREE_FORM, ["accuracy", "f1"], "classification").metric == "accuracy"
    code = choose_primary(FREE_FORM, ["exact_match", "chrf", "bleu"], "code")
    assert code.metric == "exact_match" and "task code" in code.reason


def test_a_configured_judge_is_primary_for_free_form_references_only():
    free = with_judge(choose_primary(FREE_FORM, GENERIC, "chat"), "judge_win_rate", "big-judge")
    assert free.metric == "judge_win_rate"
    assert free.reason.startswith("auto: free-form references (median 16 words")
    assert free.reason.endswith("and a judge (big-judge) is configured")
    closed = choose_primary([str(i) for i in range(6)], GENERIC, "instruction")
    assert with_judge(closed, "judge_win_rate", "big-judge") == closed
