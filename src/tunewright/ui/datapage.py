"""The data page: the validation report, rejected rows by reason, and one example rendered the
way `tunewright data render` shows it (same tokenizer, template and loss mask)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError
from tunewright.runs import data_split, validation_report
from tunewright.ui.catalog import load_run_config, read_json, read_rows

ROWS_PER_REASON = 200  # a page holds this many rejected rows per reason; the count says the rest
SPLITS = ("train", "eval", "rejected")

_tokenizers: dict[Path, Any] = {}
_tokenizers_lock = threading.Lock()


def data_overview(run: Path) -> dict[str, Any]:
    """The validation report and the rejected rows grouped by their reason."""
    rejected = read_rows(data_split(run, "rejected"))
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for row in rejected:
        by_reason.setdefault(_reason(row), []).append(row)
    return {
        "report": read_json(validation_report(run)),
        "rejected": [
            {"reason": reason, "count": len(rows), "rows": rows[:ROWS_PER_REASON]}
            for reason, rows in sorted(by_reason.items(), key=lambda item: -len(item[1]))
        ],
        "sizes": {split: len(read_rows(data_split(run, split))) for split in ("train", "eval")},
    }


def render_row(run: Path, split: str, index: int) -> dict[str, Any]:
    """Example `index` of a prepared split as token boxes, (text, carries loss) each, per side
    (a preference pair has two). Slow the first time: the tokenizer loads (sync route, so a
    worker thread waits for it, not the event loop)."""
    from tunewright.chat import token_boxes
    from tunewright.data.records import location, render_sides

    if split not in ("train", "eval"):
        raise TunewrightError(f"split must be train or eval, not {split!r}")
    records = read_rows(data_split(run, split))
    if not 0 <= index < len(records):
        raise TunewrightError(f"{split} has {len(records)} examples; there is no index {index}")
    config = load_run_config(run)
    tokenizer = _tokenizer(run, config)
    record = records[index]
    rendered_sides = []
    for side, rendered in render_sides(
        tokenizer, record, config.train.train_on_prompt, config.data.max_seq_len
    ):
        rendered_sides.append(
            {
                "side": side,
                "boxes": token_boxes(tokenizer, rendered),
                "tokens": len(rendered.input_ids),
                "loss_tokens": sum(1 for label in rendered.labels if label != -100),
                "truncated_from": rendered.full_length
                if rendered.full_length > len(rendered.input_ids)
                else None,
            }
        )
    return {"location": location(record), "count": len(records), "sides": rendered_sides}


def _tokenizer(run: Path, config: Any) -> Any:
    from tunewright.models import load_base_tokenizer

    with _tokenizers_lock:
        if run not in _tokenizers:
            _tokenizers[run], _ = load_base_tokenizer(config)
        return _tokenizers[run]


def _reason(row: dict[str, Any]) -> str:
    for key in ("check", "reason", "error"):
        if isinstance(row.get(key), str):
            return row[key]
    return "unknown"


def source_row(run: Path, where: str) -> dict[str, Any]:
    """The raw line at `file:line`, for a location the validation report names. Only the data
    files that report lists are read, so this reads nothing else on the machine."""
    file, _, line_text = where.rpartition(":")
    report = read_json(validation_report(run)) or {}
    listed = {str(entry.get("file")) for entry in report.get("files") or []}
    if file not in listed or not line_text.isdigit():
        raise TunewrightError(f"{where} is not a row of this run's data files")
    number = int(line_text)
    with open(file, encoding="utf-8", errors="replace") as handle:
        for count, text in enumerate(handle, start=1):
            if count == number:
                return {"location": where, "text": text.rstrip("\n")}
    raise TunewrightError(f"{file} has fewer than {number} lines")
