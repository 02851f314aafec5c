"""Which held-out examples are evaluated, and a count of the ones left out and why.

Nothing is left out quietly: an example without a reference answer, and one past
`eval.max_examples`, are counted into `metrics.json`'s `selection` and shown in the report.
"""

from __future__ import annotations

from tunewright.data.records import Record, expected_answer
from tunewright.errors import TunewrightError


def select_examples(
    records: list[Record], max_examples: int | None
) -> tuple[list[Record], dict[str, int]]:
    """(the examples to evaluate, how many were available and why the rest were left out).
    An example without an assistant answer has nothing to compare with, and `eval.max_examples`
    keeps the first ones; both are counted, so the report says what was not evaluated."""
    answered = [r for r in records if expected_answer(r) is not None]
    if not answered:
        raise TunewrightError(
            f"no evaluable examples: none of the {len(records)} has an assistant answer to compare"
        )
    chosen = answered[:max_examples] if max_examples else answered
    return chosen, {
        "available": len(records),
        "without_reference": len(records) - len(answered),
        "over_max_examples": len(answered) - len(chosen),
        "evaluated": len(chosen),
    }


def left_out_note(selection: dict[str, int]) -> str | None:
    """One line on the examples not evaluated, or None when every one was."""
    reasons = []
    if selection["without_reference"]:
        reasons.append(f"{selection['without_reference']} without an assistant answer to compare")
    if selection["over_max_examples"]:
        reasons.append(f"{selection['over_max_examples']} past eval.max_examples")
    if not reasons:
        return None
    return (
        f"evaluating {selection['evaluated']} of {selection['available']} examples; "
        f"left out: {', '.join(reasons)}"
    )
