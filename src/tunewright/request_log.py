"""The serving request log's record: one JSON line per request, written by `tunewright serve`
and read back by `tunewright monitor` (and by anything else that turns served traffic into
data), so its shape lives below every stage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class RequestRecord:
    """One request as the log and the metrics see it; routes fill in what they learn."""

    request_id: str
    endpoint: str
    started: float  # unix time
    model: str | None = None  # as requested
    served: bool = False  # the model exists here (only then is it a metrics label)
    status: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_words: int | None = None  # whitespace words of the prompt text, for drift checks
    error: str | None = None
    prompt: Any = None  # content: written only with serve.log_content
    output: Any = None

    def log_line(self, latency_s: float, with_content: bool) -> dict[str, Any]:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(self.started, timezone.utc).isoformat(),
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "model": self.model,
            "status": self.status,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_words": self.prompt_words,
            "latency_s": round(latency_s, 4),
            "error": self.error,
        }
        if with_content:
            line.update(prompt=self.prompt, output=self.output)
        return line


def read_request_log(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a request log in time order, each with `_time` (an aware datetime), and
    the number of lines that were not a record (a torn last line, or not our log)."""
    records, unreadable = [], 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                moment = datetime.fromisoformat(record["time"])
                # serve writes UTC with its offset; a log without one is read as UTC too
                record["_time"] = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
                records.append(record)
            except (ValueError, KeyError, TypeError):
                unreadable += 1
    records.sort(key=lambda r: r["_time"])
    return records, unreadable
