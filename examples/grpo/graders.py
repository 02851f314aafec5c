"""The example's own grader, named in config.yaml as `python: graders:right_number`."""

from __future__ import annotations

import re
from typing import Any


def right_number(completion: str, reference: str | None, prompt: Any) -> float:
    """1 when the last number in the answer is the right sum, whatever surrounds it."""
    numbers = re.findall(r"-?\d+", completion)
    return float(bool(numbers) and reference is not None and numbers[-1] == reference.strip())
