"""Small projects the tests train on: training rows plus a config.yaml, built in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def addition_rows(count: int) -> list[dict[str, str]]:
    """Alpaca rows with a fixed answer shape: quick for the tiny model to learn."""
    return [
        {"instruction": f"Add {i} and {i}.", "output": f"The answer is {2 * i}, of course."}
        for i in range(count)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_project(
    folder: Path,
    *,
    model: Path | str | None,
    rows: list[dict] | bytes | None = None,
    name: str | None = None,
    **sections: Any,
) -> Path:
    """Write a project into `folder` (created if missing); returns its config.yaml.

    The config is a small base - `model.name`, `data.train: train.jsonl` and
    `train.report_to: []` (no trackers) - with `sections` deep-merged over it:
    `train={"max_steps": 4}` keeps the base's `report_to`. A None value removes the key:
    `train=None` leaves no train section, `model=None` leaves the model to its default.
    `rows` (default: `addition_rows(40)`) go to the file `data.train` names, as JSON lines, or
    as they are when given as bytes (planted damage, other formats).
    """
    base: dict[str, Any] = {
        "name": name,
        "model": {"name": str(model)} if model is not None else None,
        "data": {"train": "train.jsonl"},
        "train": {"report_to": []},
    }
    config = _merged(base, sections)
    folder.mkdir(parents=True, exist_ok=True)
    train_file = (config.get("data") or {}).get("train")
    if train_file is not None:
        data = folder / train_file
        if isinstance(rows, bytes):
            data.write_bytes(rows)
        else:
            write_jsonl(data, addition_rows(40) if rows is None else rows)
    elif rows is not None:
        raise ValueError("rows given, but the config has no data.train to write them to")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`, nested dicts key by key; None values drop keys."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict):
            below = merged.get(key)
            merged[key] = _merged(below if isinstance(below, dict) else {}, value)
        else:
            merged[key] = value
    return {key: value for key, value in merged.items() if value is not None}
