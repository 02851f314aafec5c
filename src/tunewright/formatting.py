"""How metric numbers are shown to people: the one source for the eval report and the model card.

Metric families go by name. Rates are fractions in [0, 1] shown as percentages; BLEU and chrF
come on sacrebleu's 0-100 scale; everything else (loss, perplexity, ...) by significant digits.
Missing values (None, NaN, non-numbers) show as MISSING.
"""

from __future__ import annotations

import math
from typing import Any, Literal

RATE_KEYS = ("exact_match", "accuracy", "f1", "rouge", "precision", "recall", "win_rate")
SCORE_KEYS = ("bleu", "chrf")
MISSING = "—"


def metric_kind(metric: str) -> Literal["rate", "score", "real"]:
    name = metric.lower()
    if any(key in name for key in SCORE_KEYS):
        return "score"
    if any(key in name for key in RATE_KEYS):
        return "rate"
    return "real"


def as_number(value: Any) -> float | None:
    """`value` as a float, or None when it is missing, NaN or not a number (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def format_significant(value: float, digits: int = 3, signed: bool = False) -> str:
    """`value` to `digits` significant digits, keeping trailing zeros (0.420, 2.31, 1235)."""
    sign = "+" if signed else ""
    if value == 0 or math.isinf(value):
        return f"{value:{sign}.{digits - 1}f}"
    if abs(value) < 1e-3:
        return f"{value:{sign}.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:{sign}.{decimals}f}"


def format_value(metric: str, value: Any) -> str:
    number = as_number(value)
    if number is None:
        return MISSING
    kind = metric_kind(metric)
    if kind == "rate":
        return f"{number * 100:.1f}%"
    if kind == "score":
        return f"{number:.1f}"
    return format_significant(number)


def format_diff(metric: str, value: Any, unit: bool = False) -> str:
    """Signed difference; rates in percentage points (`unit` adds " pts")."""
    number = as_number(value)
    if number is None:
        return MISSING
    kind = metric_kind(metric)
    if kind == "rate":
        return f"{number * 100:+.1f}" + (" pts" if unit else "")
    if kind == "score":
        return f"{number:+.1f}"
    return format_significant(number, signed=True)


def format_ci(metric: str, low: Any, high: Any) -> str:
    """A confidence interval of a difference, e.g. "+66.0 to +92.0"."""
    if as_number(low) is None or as_number(high) is None:
        return MISSING
    return f"{format_diff(metric, low)} to {format_diff(metric, high)}"


def format_p(p: Any) -> str:
    number = as_number(p)
    if number is None:
        return MISSING
    return "< 0.001" if number < 0.001 else f"{number:.3f}"
