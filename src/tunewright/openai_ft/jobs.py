"""Following a fine-tuning job and keeping `<run>/openai/` in step with it.

`<run>/openai/` holds: `job.json` (the latest job object: base `model`, `fine_tuned_model`,
status, error), `events.jsonl` (oldest first), `checkpoints.json` (with their metrics),
`files.json` (uploaded and result file ids), `results/` (result files, e.g. step_metrics.csv),
the uploaded `train.jsonl`/`validation.jsonl`, `check.json` and `manifest.json`.

OpenAI lists events, checkpoints and jobs newest first; `after=<id>` pages towards older ones.
New events are therefore read from the newest until one already seen.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright import runs
from tunewright.config import Config
from tunewright.errors import TunewrightError
from tunewright.files import append_jsonl, atomic_write_bytes, atomic_write_json, read_jsonl
from tunewright.runs import MANIFEST, OPENAI, read_manifest

STAGE = OPENAI
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
JOB_OUTPUTS = ("job.json", "events.jsonl", "checkpoints.json", "results")
MAX_POLL_FAILURES = 5  # consecutive failed polls before following gives up


class JobFailedError(TunewrightError):
    """The fine-tuning job ended failed or cancelled."""


@dataclass
class Update:
    """What one poll found."""

    job: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)  # new ones, oldest first
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # new ones, by step
    results: list[Path] = field(default_factory=list)  # result files saved by this poll
    status_changed: bool = False

    @property
    def done(self) -> bool:
        return self.job["status"] in TERMINAL


def stage_dir(config: Config) -> Path:
    return runs.stage_dir(config, STAGE)


def last_job_id(config: Config) -> str:
    """The job last submitted for this run, from `<run>/openai/job.json`."""
    path = stage_dir(config) / "job.json"
    if not path.is_file():
        raise TunewrightError(
            f"no OpenAI job submitted for run '{config.name}' (no {path})",
            hint="Submit one with `tunewright openai submit CONFIG`, or pass a job id.",
        )
    return str(json.loads(path.read_text(encoding="utf-8"))["id"])


def run_folder_for(config: Config, job_id: str) -> Path | None:
    """The run's openai folder when `job_id` is the run's job (its state is saved there), else
    None (another job: shown, not saved)."""
    path = stage_dir(config) / "job.json"
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("id") == job_id:
        return path.parent
    return None


def reset_job_outputs(folder: Path) -> None:
    """Remove the previous job's state before a new submission."""
    for name in JOB_OUTPUTS:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def save_job(folder: Path, job: Any) -> dict[str, Any]:
    data = job if isinstance(job, dict) else job_data(job)
    atomic_write_json(folder / "job.json", data)
    return data


def job_data(job: Any) -> dict[str, Any]:
    """A job object of the SDK as the JSON OpenAI sent. Not `model_dump`: the SDK (3.x) types a
    multi grader's `graders` as one grader rather than OpenAI's mapping by name, so a
    reinforcement job would be dumped with another grader type's fields (and a warning)."""
    return job.to_dict(mode="json", warnings=False)


class JobTracker:
    """Polls one job and, when `folder` is given, keeps its state there across polls and runs."""

    def __init__(self, client: Any, job_id: str, folder: Path | None) -> None:
        self.client = client
        self.job_id = job_id
        self.folder = folder
        events = folder / "events.jsonl" if folder else None
        self.events: list[dict[str, Any]] = (
            read_jsonl(events) if events and events.is_file() else []
        )
        saved = _read_json(folder / "checkpoints.json") if folder else None
        self.checkpoints: list[dict[str, Any]] = saved or []
        self.status: str | None = None

    def poll(self) -> Update:
        job = job_data(self.client.fine_tuning.jobs.retrieve(self.job_id))
        update = Update(job, status_changed=job["status"] != self.status)
        self.status = job["status"]
        update.events = self._new_events()
        update.checkpoints = self._new_checkpoints()
        if self.folder is not None:
            save_job(self.folder, job)
            if update.done:
                update.results = self._save_results(job)
                _record_outcome(self.folder, job)
        return update

    def _new_events(self) -> list[dict[str, Any]]:
        seen = {event["id"] for event in self.events}
        new = []
        # The SDK pages on with after=<last id> while has_more; stop at the first seen event.
        for event in self.client.fine_tuning.jobs.list_events(self.job_id, limit=50):
            if event.id in seen:
                break
            new.append(event.model_dump(mode="json"))
        new.reverse()
        self.events += new
        if new and self.folder is not None:
            append_jsonl(self.folder / "events.jsonl", new)
        return new

    def _new_checkpoints(self) -> list[dict[str, Any]]:
        listed = self.client.fine_tuning.jobs.checkpoints.list(self.job_id, limit=50)
        current = sorted((c.model_dump(mode="json") for c in listed), key=_step)
        known = {c["id"] for c in self.checkpoints}
        new = [c for c in current if c["id"] not in known]
        if new:
            self.checkpoints = sorted([*self.checkpoints, *new], key=_step)
            if self.folder is not None:
                atomic_write_json(self.folder / "checkpoints.json", self.checkpoints)
        return new

    def _save_results(self, job: dict[str, Any]) -> list[Path]:
        """Download result files not saved yet; files.json lists them."""
        assert self.folder is not None
        files = _read_json(self.folder / "files.json") or {}
        saved = {entry["id"]: entry for entry in files.get("results", [])}
        paths = []
        for file_id in job.get("result_files") or []:
            if file_id in saved and (self.folder / saved[file_id]["path"]).is_file():
                continue
            info = self.client.files.retrieve(file_id)
            name = Path(info.filename or file_id).name or file_id  # never a path from the server
            if f"results/{name}" in {entry["path"] for entry in saved.values()}:
                name = f"{file_id}-{name}"
            target = self.folder / "results" / name
            atomic_write_bytes(target, decode_result(self.client.files.content(file_id).read()))
            saved[file_id] = {"id": file_id, "filename": info.filename, "path": f"results/{name}"}
            paths.append(target)
        if paths:
            files["results"] = list(saved.values())
            atomic_write_json(self.folder / "files.json", files)
        return paths


def follow_job(
    tracker: JobTracker,
    poll_seconds: float,
    on_update: Callable[[Update], None],
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the job ends; `on_update` sees every poll. Returns the final job.

    Jobs run for hours: a dropped connection or a 5xx answer (after the SDK's own retries) is
    retried at the next poll, up to MAX_POLL_FAILURES times in a row, and reported to
    `on_retry`."""
    import openai

    failures = 0
    while True:
        try:
            update = tracker.poll()
        except (openai.APIConnectionError, openai.InternalServerError) as exc:
            failures += 1
            if failures > MAX_POLL_FAILURES:
                raise
            if on_retry is not None:
                on_retry(
                    f"{type(exc).__name__}: {exc.message}; retrying in {poll_seconds:g} s "
                    f"({failures}/{MAX_POLL_FAILURES})"
                )
            sleep(poll_seconds)
            continue
        failures = 0
        on_update(update)
        if update.done:
            return update.job
        sleep(poll_seconds)


def ensure_succeeded(job: dict[str, Any]) -> None:
    """Raise JobFailedError, with OpenAI's error, for a failed or cancelled job."""
    if job["status"] == "failed":
        error = job.get("error") or {}
        parts = [f"{k} {error[k]}" for k in ("code", "param") if error.get(k)]
        reason = error.get("message") or "no reason given"
        raise JobFailedError(
            f"job {job['id']} failed: {reason}" + (f" ({', '.join(parts)})" if parts else ""),
            hint="Fix what the error names and submit again: tunewright openai submit CONFIG",
        )
    if job["status"] == "cancelled":
        raise JobFailedError(
            f"job {job['id']} was cancelled; no model was produced",
            hint="Submit again with `tunewright openai submit CONFIG`.",
        )


def decode_result(content: bytes) -> bytes:
    """OpenAI serves result files (the metrics CSV) base64-encoded; decode when they are."""
    try:
        decoded = base64.b64decode(content, validate=True)
        decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        return content
    return decoded


def _record_outcome(folder: Path, job: dict[str, Any]) -> None:
    """Add the job's outcome to the stage manifest, which was written at submission."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("job_id") != job["id"]:
        return
    manifest.update(
        job_status=job["status"],
        fine_tuned_model=job.get("fine_tuned_model"),
        trained_tokens=job.get("trained_tokens"),
        finished_at=job.get("finished_at"),
    )
    atomic_write_json(folder / MANIFEST, manifest)


def _step(checkpoint: dict[str, Any]) -> int:
    return int(checkpoint.get("step_number") or 0)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
