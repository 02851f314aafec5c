"""Small training data the integration tests write into their projects."""

from __future__ import annotations

import json
from pathlib import Path


def addition_rows(count: int) -> list[dict[str, str]]:
    """Alpaca rows with a fixed answer shape: quick for the tiny model to learn."""
    return [
        {"instruction": f"Add {i} and {i}.", "output": f"The answer is {2 * i}, of course."}
        for i in range(count)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
