"""The example's own grader, named in config.yaml as `python: graders:fields_right`."""

from __future__ import annotations

import json
import re
from typing import Any

FIELDS = ("name", "age", "city")


def fields_right(completion: str, reference: str | None, prompt: Any) -> float:
    """The share of name, age and city that match the reference, read from the first {...}
    in the answer: whether the whole answer is valid JSON is the `json_parses` grader's job."""
    if reference is None:
        return 0.0
    found = re.search(r"\{.*?\}", completion, re.DOTALL)
    try:
        got = json.loads(found.group(0)) if found else {}
    except json.JSONDecodeError:
        return 0.0
    want = json.loads(reference)
    if not isinstance(got, dict):
        return 0.0
    return sum(got.get(key) == want[key] for key in FIELDS) / len(FIELDS)
