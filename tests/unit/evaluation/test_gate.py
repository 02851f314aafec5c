"""eval.gate on constructed results: improvement (and its alias eval.require_improvement), and
no slice significantly worse, each failure naming the key that asked for it."""

from __future__ import annotations

from typing import Any

import pytest

from tunewright.config import load_config
from tunewright.evaluation.gate import gate_checks

BETTER_BUT_A_SLICE_WORSE = {
    "primary_metric": "accuracy",
    "verdict": "better",
    "slices": {"worse": ["label=c"]},
}


def _gate(overrides: list[str], results: dict[str, Any]) -> dict[str, Any]:
    return gate_checks(load_config(None, overrides), results)


def test_no_checks_by_default() -> None:
    assert _gate([], BETTER_BUT_A_SLICE_WORSE) == {"checks": {}, "passed": True, "failures": []}


@pytest.mark.parametrize("key", ["eval.gate.improvement", "eval.require_improvement"])
def test_improvement_and_its_alias_are_one_check(key: str) -> None:
    same = {"primary_metric": "exact_match", "verdict": "no significant change"}
    gate = _gate([f"{key}=true"], same)
    assert gate["checks"] == {"improvement": False} and not gate["passed"]
    assert gate["failures"] == [
        f"{key}: exact_match is 'no significant change', not significantly better"
    ]
    assert _gate([f"{key}=true"], BETTER_BUT_A_SLICE_WORSE)["passed"]


def test_a_worse_slice_fails_the_gate_even_when_better_overall() -> None:
    gate = _gate(
        ["eval.gate.improvement=true", "eval.gate.no_worse_slice=true"], BETTER_BUT_A_SLICE_WORSE
    )
    assert gate["checks"] == {"improvement": True, "no_worse_slice": False}
    assert gate["failures"] == [
        "eval.gate.no_worse_slice: significantly worse (Holm-corrected) on label=c"
    ]
    no_slices = {"primary_metric": "accuracy", "verdict": "better"}
    assert _gate(["eval.gate.no_worse_slice=true"], no_slices)["passed"]


def test_an_unknown_gate_key_is_a_config_error() -> None:
    from tunewright.errors import TunewrightError

    with pytest.raises(TunewrightError, match=r"eval\.gate\.no_worse_slices"):
        load_config(None, ["eval.gate.no_worse_slices=true"])


def test_a_worse_suite_fails_its_gate() -> None:
    results = {
        "primary_metric": "exact_match",
        "verdict": "better",
        "suites": [
            {"metrics": [{"metric": "general accuracy", "verdict": "worse"}]},
            {"metrics": [{"metric": "maths accuracy", "verdict": "no significant change"}]},
        ],
    }
    gate = _gate(["eval.gate.no_worse_suite=true"], results)
    assert gate["checks"] == {"no_worse_suite": False}
    assert gate["failures"] == ["eval.gate.no_worse_suite: significantly worse on general accuracy"]
    assert _gate([], results)["passed"]
