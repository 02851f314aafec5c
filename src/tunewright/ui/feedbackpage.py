"""The feedback page: a run's request log (written by `tunewright serve` with
`serve.log_content: true`) as exchanges to mark good or bad and correct, and the import that
turns them into training rows (`tunewright data import-logs`, the same function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.data.feedback import (
    RATINGS,
    append_feedback,
    default_out_dir,
    feedback_path,
    import_logs,
    read_feedback,
)
from tunewright.errors import TunewrightError
from tunewright.request_log import read_request_log
from tunewright.runs import request_log
from tunewright.ui.catalog import load_run_config

SHOWN = 500  # the newest exchanges on one page


def exchanges(run: Path) -> dict[str, Any]:
    log = request_log(run)
    if not log.is_file():
        return {"log": str(log), "exchanges": [], "total": 0, "without_content": 0}
    records, _ = read_request_log(log)
    judged = read_feedback(feedback_path(log))
    rows, without_content = [], 0
    for record in records:
        if record.get("prompt") is None:  # logged without content, or not a generation (/v1/models)
            without_content += 1
            continue
        judgement = judged.get(record.get("request_id", ""))
        rows.append(
            {
                "request_id": record.get("request_id"),
                "time": record.get("time"),
                "status": record.get("status"),
                "prompt": record.get("prompt"),
                "output": record.get("output"),
                "rating": judgement.rating if judgement else None,
                "correction": judgement.correction if judgement else None,
            }
        )
    return {
        "log": str(log),
        "exchanges": rows[-SHOWN:],
        "total": len(rows),
        "without_content": without_content,
    }


def mark(run: Path, request_id: str, rating: Any, correction: Any) -> dict[str, Any]:
    if rating not in RATINGS:
        raise TunewrightError(f"rating must be one of {', '.join(RATINGS)}")
    if not request_id:
        raise TunewrightError("request_id is missing")
    text = correction if isinstance(correction, str) else None
    judgement = append_feedback(feedback_path(request_log(run)), request_id, rating, text)
    return {
        "request_id": request_id,
        "rating": judgement.rating,
        "correction": judgement.correction,
    }


def import_exchanges(run: Path) -> dict[str, Any]:
    """import_logs with the run's own config, so the data checks use its model's tokenizer."""
    log = request_log(run)
    return import_logs(log, feedback_path(log), default_out_dir(log), load_run_config(run))
