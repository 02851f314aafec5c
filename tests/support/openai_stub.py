"""A local stand-in for OpenAI's files and fine-tuning endpoints, for tests.

It speaks the published wire protocol closely enough for the official `openai` client: JSON
objects shaped like FileObject, FineTuningJob, FineTuningJobEvent and FineTuningJobCheckpoint;
lists as {"object": "list", "data": [...], "has_more": bool}, newest first, paged with
`after=<id>` and `limit`; errors as {"error": {"message", "type", "param", "code"}} at the top
level with the real status codes (the SDK only maps errors correctly in that shape).

Jobs move on with time, one status per `step_seconds`: validating_files -> queued -> running
(three steps, with metrics events and checkpoints) -> succeeded. A job moves on only when it is
read (retrieved, listed or cancelled), and by at most one status per read, so a client that polls
sees every status however slowly it gets its turn on a busy machine (the real API may skip some;
the tests check that each one is shown). The job's suffix picks another scenario: "fail" (fails
after validating its files), "cancelled" (cancelled by someone else while running) or "slow"
(each status lasts a minute, time to cancel it).

Reinforcement jobs (method type "reinforcement") need a reasoning model (o4-mini) and a grader
that OpenAI would accept: a known type with its required fields, known string_check operations
and text_similarity metrics, templates in the item/sample namespaces, python source that
compiles and defines `grade`, and a multi grader whose graders are a mapping by name, with a
`calculate_output` that names only them.

Not product code: tests only.
"""

from __future__ import annotations

import ast
import base64
import itertools
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

FINE_TUNABLE = (
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo-0125",
    "o4-mini-2025-04-16",
)
RFT_MODELS = ("o4-mini-2025-04-16",)  # reinforcement fine-tuning runs on reasoning models only
GRADER_FIELDS = {  # each grader type's required fields, as OpenAI's API reference lists them
    "string_check": ("name", "input", "reference", "operation"),
    "text_similarity": ("name", "input", "reference", "evaluation_metric"),
    "python": ("name", "source"),
    "score_model": ("name", "input", "model"),
    "multi": ("name", "graders", "calculate_output"),
}
STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
SIMILARITY_METRICS = (
    "cosine",
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    *(f"rouge_{n}" for n in (1, 2, 3, 4, 5, "l")),
)
FORMULA_FUNCTIONS = ("min", "max", "abs", "floor", "ceil", "exp", "sqrt", "log")
RUNNING_STEPS = 3
SCENARIOS = {
    "success": ["validating_files", "queued", *["running"] * RUNNING_STEPS, "succeeded"],
    "fail": ["validating_files", "failed"],
    "cancelled": ["validating_files", "queued", "running", "cancelled"],
    "slow": ["validating_files", "queued", *["running"] * RUNNING_STEPS, "succeeded"],
}
FAILURE = {
    "code": "invalid_training_file",
    "message": "The job failed due to an invalid training file. Invalid file format. "
    "Example 3, message 2: Unrecognized role: robot",
    "param": "training_file",
}
METRICS_CSV = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
_ids = itertools.count(1)


class StubError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


@dataclass
class Job:
    data: dict[str, Any]
    scenario: str
    started: float = field(default_factory=time.monotonic)
    phase: int = -1
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # oldest first


@dataclass
class StubState:
    api_key: str
    step_seconds: float = 0.2
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)  # in creation order
    requests: list[tuple[str, str]] = field(default_factory=list)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> create request


def new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}stub"


def build_app(state: StubState) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(StubError)
    async def _error(_: Request, exc: StubError) -> JSONResponse:
        body = {"message": exc.message, "type": "invalid_request_error"}
        body.update(param=exc.param, code=exc.code)
        return JSONResponse({"error": body}, status_code=exc.status)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        state.requests.append((request.method, request.url.path))
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if given != state.api_key:
            masked = f"{given[:3]}{'*' * 8}{given[-4:]}" if len(given) > 8 else "***"
            error = {
                "message": f"Incorrect API key provided: {masked}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return JSONResponse({"error": error}, status_code=401)
        return await call_next(request)

    _file_routes(app, state)
    _job_routes(app, state)
    return app


def _file_routes(app: FastAPI, state: StubState) -> None:
    @app.post("/v1/files")
    async def create_file(request: Request) -> dict[str, Any]:
        fields = parse_multipart(request.headers.get("content-type", ""), await request.body())
        purpose, upload = fields.get("purpose"), fields.get("file")
        if not purpose or upload is None:
            raise StubError(400, "Missing required parameter: 'purpose' or 'file'.")
        filename, content = upload
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            raise StubError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", "file")
        return add_file(state, filename, content, purpose.decode())

    @app.get("/v1/files/{file_id}")
    async def get_file(file_id: str) -> dict[str, Any]:
        return find_file(state, file_id)

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str) -> Response:
        find_file(state, file_id)
        return Response(state.contents[file_id], media_type="application/octet-stream")


def _job_routes(app: FastAPI, state: StubState) -> None:
    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request) -> dict[str, Any]:
        return create_job_from(state, await request.json())

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(after: str | None = None, limit: int = 20) -> dict[str, Any]:
        for job in state.jobs.values():
            advance(state, job)
        newest = [job.data for job in reversed(state.jobs.values())]
        return page(newest, after, limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def get_job(job_id: str) -> dict[str, Any]:
        return advance(state, find_job(state, job_id)).data

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str) -> dict[str, Any]:
        job = advance(state, find_job(state, job_id))
        if job.data["status"] in ("succeeded", "failed", "cancelled"):
            raise StubError(400, f"Job has already completed: {job_id}", "fine_tuning_job_id")
        finish(state, job, "cancelled")
        return job.data

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def list_events(job_id: str, after: str | None = None, limit: int = 20) -> dict:
        job = find_job(state, job_id)
        return page(list(reversed(job.events)), after, limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def list_checkpoints(job_id: str, after: str | None = None, limit: int = 10) -> dict:
        job = find_job(state, job_id)
        return page(list(reversed(job.checkpoints)), after, limit)


# ---------------------------------------------------------------------------------------------
# Files


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """{name: bytes} for plain fields and {name: (filename, bytes)} for file fields."""
    if not content_type.startswith("multipart/form-data"):
        raise StubError(400, "Expected multipart/form-data.")
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        fields[str(name)] = (filename, payload) if filename is not None else payload
    return fields


def add_file(state: StubState, filename: str, content: bytes, purpose: str) -> dict[str, Any]:
    file_id = new_id("file-")
    state.files[file_id] = {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }
    state.contents[file_id] = content
    return state.files[file_id]


def find_file(state: StubState, file_id: str) -> dict[str, Any]:
    if file_id not in state.files:
        raise StubError(404, f"No such File object: {file_id}", "id")
    return state.files[file_id]


# ---------------------------------------------------------------------------------------------
# Jobs


def create_job_from(state: StubState, body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not model:
        raise StubError(400, "Missing required parameter: 'model'.", "model")
    if model not in FINE_TUNABLE and not str(model).startswith("ft:"):
        message = f"Model {model} is not available for fine-tuning or does not exist."
        raise StubError(400, message, "model", "model_not_available")
    for key in ("training_file", "validation_file"):
        file_id = body.get(key)
        if key == "training_file" or file_id is not None:
            _check_training_file(state, key, file_id)
    method = body.get("method") or {"type": "supervised", "supervised": {}}
    if method.get("type") not in ("supervised", "dpo", "reinforcement"):
        raise StubError(400, f"Invalid method type: {method.get('type')}", "method.type")
    options = method.get(method["type"]) or {}
    if method["type"] == "reinforcement":
        _check_reinforcement(model, options)
    suffix = body.get("suffix") or ""
    scenario = next((s for s in SCENARIOS if s != "success" and s in suffix), "success")
    job_id = new_id("ftjob-")
    hyper = dict(options.get("hyperparameters") or {})
    data = {
        "object": "fine_tuning.job",
        "id": job_id,
        "model": model,
        "created_at": int(time.time()),
        "finished_at": None,
        "fine_tuned_model": None,
        "organization_id": "org-stub",
        "result_files": [],
        "status": "validating_files",
        "validation_file": body.get("validation_file"),
        "training_file": body["training_file"],
        "hyperparameters": hyper,
        "trained_tokens": None,
        "error": None,
        "user_provided_suffix": body.get("suffix"),
        "seed": body.get("seed") if body.get("seed") is not None else 1234,
        "estimated_finish": None,
        "integrations": [],
        "metadata": body.get("metadata"),
        "method": {"type": method["type"], method["type"]: {**options, "hyperparameters": hyper}},
    }
    job = Job(data, scenario)
    state.jobs[job_id] = job
    state.bodies[job_id] = body
    return advance(state, job).data


def _check_training_file(state: StubState, key: str, file_id: Any) -> None:
    if not file_id:
        raise StubError(400, f"Missing required parameter: '{key}'.", key)
    if file_id not in state.files:
        raise StubError(400, f"invalid {key}: {file_id}", key, "invalid_file")
    if state.files[file_id]["purpose"] != "fine-tune":
        raise StubError(400, f"File {file_id} does not have purpose 'fine-tune'", key)


def _check_reinforcement(model: str, options: dict[str, Any]) -> None:
    base = model.split(":")[1] if model.startswith("ft:") else model
    if base not in RFT_MODELS:
        message = f"Model {model} does not support reinforcement fine-tuning."
        raise StubError(400, message, "model", "model_not_available")
    if "grader" not in options:
        param = "method.reinforcement.grader"
        raise StubError(400, f"Missing required parameter: '{param}'.", param)
    check_grader(options["grader"], "method.reinforcement.grader", nested=False)


def check_grader(grader: Any, param: str, nested: bool) -> None:
    """What OpenAI checks of a grader when the job is created (a multi grader's graders may not
    be multi graders themselves)."""
    if not isinstance(grader, dict):
        raise StubError(400, f"Invalid type for '{param}': expected an object.", param)
    kind = grader.get("type")
    if kind not in GRADER_FIELDS or (nested and kind == "multi"):
        message = f"Invalid value for '{param}.type': {kind!r}."
        raise StubError(400, message, f"{param}.type", "invalid_value")
    for key in GRADER_FIELDS[kind]:
        if grader.get(key) in (None, "", {}, []):
            where = f"{param}.{key}"
            raise StubError(400, f"Missing required parameter: '{where}'.", where)
    if kind == "string_check" and grader["operation"] not in STRING_OPERATIONS:
        where = f"{param}.operation"
        raise StubError(400, f"Invalid value for '{where}': {grader['operation']!r}.", where)
    if kind == "text_similarity" and grader["evaluation_metric"] not in SIMILARITY_METRICS:
        where = f"{param}.evaluation_metric"
        message = f"Invalid value for '{where}': {grader['evaluation_metric']!r}."
        raise StubError(400, message, where)
    for key in ("input", "reference"):
        _check_template(grader.get(key), f"{param}.{key}")
    if kind == "python":
        _check_python(grader["source"], f"{param}.source")
    if kind == "multi":
        _check_multi(grader, param)


def _check_template(text: Any, param: str) -> None:
    for namespace in re.findall(r"\{\{\s*(\w+)\.", text if isinstance(text, str) else ""):
        if namespace not in ("item", "sample"):
            message = f"Invalid template namespace '{namespace}' in '{param}': use item or sample."
            raise StubError(400, message, param)


def _check_python(source: Any, param: str) -> None:
    try:
        tree = ast.parse(str(source))
    except SyntaxError as exc:
        raise StubError(400, f"Invalid python grader source: {exc.msg}.", param) from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == "grade" for n in tree.body):
        raise StubError(400, "The python grader must define grade(sample, item).", param)


def _check_multi(grader: dict[str, Any], param: str) -> None:
    graders = grader["graders"]
    if not isinstance(graders, dict):
        message = f"Invalid type for '{param}.graders': expected an object of graders by name."
        raise StubError(400, message, f"{param}.graders")
    for name, inner in graders.items():
        check_grader(inner, f"{param}.graders.{name}", nested=True)
    names = set(re.findall(r"[A-Za-z_]\w*", grader["calculate_output"]))
    unknown = sorted(names - set(graders) - set(FORMULA_FUNCTIONS))
    if unknown:
        where = f"{param}.calculate_output"
        message = f"Invalid '{where}': unknown grader name(s) {', '.join(unknown)}."
        raise StubError(400, message, where)


def find_job(state: StubState, job_id: str) -> Job:
    if job_id not in state.jobs:
        raise StubError(404, f"Could not find fine tune job: {job_id}", "fine_tuning_job_id")
    return state.jobs[job_id]


def advance(state: StubState, job: Job) -> Job:
    """Move the job one phase on if the clock says it is due (see the module docstring)."""
    if job.data["status"] in ("succeeded", "failed", "cancelled") and job.phase >= 0:
        return job
    step = state.step_seconds * (300 if job.scenario == "slow" else 1)
    phases = SCENARIOS[job.scenario]
    due = min(int((time.monotonic() - job.started) / step), len(phases) - 1)
    if job.phase < due:
        job.phase += 1
        enter(state, job, phases[job.phase])
    return job


def enter(state: StubState, job: Job, status: str) -> None:
    data = job.data
    if status in ("succeeded", "failed", "cancelled"):
        finish(state, job, status)
        return
    if status == "validating_files":
        add_event(job, f"Validating training file: {data['training_file']}")
    elif status == "queued":
        add_event(job, "Files validated, moving job to queued state")
    else:
        if data["status"] != "running":
            add_event(job, "Fine-tuning job started")
            _resolve_hyperparameters(data)
        _train_step(job)
    data["status"] = status


def _resolve_hyperparameters(data: dict[str, Any]) -> None:
    # OpenAI replaces "auto" with the values it picked once the job runs.
    picked = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8, "beta": 0.1}
    hyper = data["hyperparameters"]
    for key, value in list(hyper.items()):
        hyper[key] = picked.get(key, value) if value == "auto" else value


def _train_step(job: Job) -> None:
    step = len(job.checkpoints) + 1
    loss = round(2.0 / (step + 1), 4)
    metrics = {"step": step, "train_loss": loss, "train_mean_token_accuracy": 0.5 + step / 10}
    add_event(job, f"Step {step}/{RUNNING_STEPS}: training loss={loss}", metrics, "metrics")
    model = f"ft:{job.data['model']}:stub::{job.data['id'][-10:]}:ckpt-step-{step}"
    job.checkpoints.append(
        {
            "object": "fine_tuning.job.checkpoint",
            "id": new_id("ftckpt_"),
            "created_at": int(time.time()),
            "fine_tuned_model_checkpoint": model,
            "fine_tuning_job_id": job.data["id"],
            "metrics": {**metrics, "valid_loss": loss + 0.1, "full_valid_loss": loss + 0.05},
            "step_number": step,
        }
    )


def finish(state: StubState, job: Job, status: str) -> None:
    data = job.data
    data.update(status=status, finished_at=int(time.time()))
    if status == "failed":
        data["error"] = dict(FAILURE)
        add_event(job, f"Fine-tuning job failed: {FAILURE['message']}", level="error")
    elif status == "cancelled":
        add_event(job, "Fine-tuning job cancelled")
    else:
        suffix = data.get("user_provided_suffix") or ""
        data["fine_tuned_model"] = f"ft:{data['model']}:stub:{suffix}:{data['id'][-10:]}"
        data["trained_tokens"] = 12_345
        rows = "".join(
            f"{c['step_number']},{c['metrics']['train_loss']},0.6,,\n" for c in job.checkpoints
        )
        csv = base64.b64encode((METRICS_CSV + rows).encode())  # OpenAI serves it base64-encoded
        result = add_file(state, "step_metrics.csv", csv, "fine-tune-results")
        data["result_files"] = [result["id"]]
        add_event(job, f"New fine-tuned model created: {data['fine_tuned_model']}")
        add_event(job, "The job has successfully completed")


def add_event(
    job: Job, message: str, data: Any = None, kind: str = "message", level: str = "info"
) -> None:
    job.events.append(
        {
            "object": "fine_tuning.job.event",
            "id": new_id("ftevent-"),
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "data": data or {},
            "type": kind,
        }
    )


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor pages: the `limit` items that follow `after` in list order."""
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start : start + max(1, min(limit, 100))]
    return {"object": "list", "data": chunk, "has_more": start + len(chunk) < len(items)}


# ---------------------------------------------------------------------------------------------
# Running it


class StubServer:
    """The stub on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, api_key: str, step_seconds: float = 0.2) -> None:
        self.state = StubState(api_key=api_key, step_seconds=step_seconds)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        # log_config=None: uvicorn's dictConfig would close every logging handler in the process,
        # and absl's closes its stream, which can be pytest's own capture file
        config = uvicorn.Config(
            build_app(self.state), log_level="warning", lifespan="off", log_config=None
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        deadline = time.monotonic() + 120  # turns a hang into a failure; not a speed check
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OpenAI stub did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def uploaded(self, purpose: str = "fine-tune") -> list[tuple[str, bytes]]:
        """(filename, content) of each uploaded file with `purpose`."""
        return [
            (f["filename"], self.state.contents[i])
            for i, f in self.state.files.items()
            if f["purpose"] == purpose
        ]

    def create_request(self, job_id: str) -> dict[str, Any]:
        """The JSON body the job was created with."""
        return json.loads(json.dumps(self.state.bodies[job_id]))
