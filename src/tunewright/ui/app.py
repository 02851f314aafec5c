"""The web UI's FastAPI app: one static page (static/: our own JS and CSS, no CDN) over a JSON API
on the run folders.

Routes that read files or load models are plain `def`s, which FastAPI runs in its thread pool,
so the event loop never waits on disk or torch; streamed replies hand each decoding step to a
thread. Long work (loading models, training) runs in threads or child processes whose progress
the page polls.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from tunewright.errors import TunewrightError
from tunewright.ui import catalog, chatting, datapage, feedbackpage, form, rundetail
from tunewright.ui.catalog import Run
from tunewright.ui.guard import GuardMiddleware
from tunewright.ui.jobs import JobBoard

STATIC = Path(__file__).parent / "static"


class State:
    """What the app knows beyond the disk: where runs live, its jobs, its loaded models."""

    def __init__(self, runs_dirs: list[Path], cwd: Path) -> None:
        self.runs_dirs = list(runs_dirs)
        self.cwd = cwd
        self.jobs = JobBoard()
        self.chat = chatting.ChatRoom()

    def runs(self) -> list[Run]:
        return catalog.find_runs(self.runs_dirs)

    def run(self, run_id: str) -> Run:
        for run in self.runs():
            if run.id == run_id:
                return run
        raise HTTPException(404, f"no run {run_id!r}")

    def watch(self, runs_dir: Path) -> None:
        if runs_dir.resolve() not in [d.resolve() for d in self.runs_dirs]:
            self.runs_dirs.append(runs_dir.resolve())


def create_app(runs_dirs: list[Path], cwd: Path, token: str | None = None) -> FastAPI:
    state = State(runs_dirs, cwd)
    app = FastAPI(title="tunewright ui", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = state
    app.add_middleware(GuardMiddleware, token=token)

    @app.exception_handler(TunewrightError)
    async def user_error(_: Request, exc: TunewrightError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=400)

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, headers={"cache-control": "no-store"})

    _runs_routes(app, state)
    _page_routes(app, state)
    _form_routes(app, state)
    app.router.on_shutdown.append(state.jobs.close)
    return app


def _runs_routes(app: FastAPI, state: State) -> None:
    @app.get("/api/runs")
    def runs() -> dict[str, Any]:
        rows = [catalog.summary(r, state.jobs.running_on(r.path)) for r in state.runs()]
        return {"runs": rows, "runs_dirs": [str(d) for d in state.runs_dirs]}

    @app.get("/api/compare")
    def compare(ids: str) -> dict[str, Any]:
        return catalog.compare([state.run(i) for i in ids.split(",") if i])

    @app.get("/api/runs/{run_id}")
    def detail(run_id: str) -> dict[str, Any]:
        run = state.run(run_id)
        return rundetail.run_detail(run, state.jobs.running_on(run.path))

    @app.get("/api/runs/{run_id}/history")
    def history(run_id: str, after: int = 0) -> dict[str, Any]:
        entries, lines = catalog.read_history(state.run(run_id).path, after)
        return {"entries": entries, "next": lines}

    @app.get("/files/{run_id}/{relative:path}")
    def run_file(run_id: str, relative: str) -> Response:
        """A file of the run folder (the eval report and what it links to), never outside it."""
        root = state.run(run_id).path.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise HTTPException(404, "no such file in this run")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind)


def _page_routes(app: FastAPI, state: State) -> None:
    @app.get("/api/runs/{run_id}/data")
    def data(run_id: str) -> dict[str, Any]:
        return datapage.data_overview(state.run(run_id).path)

    @app.get("/api/runs/{run_id}/render")
    def render(run_id: str, split: str = "train", index: int = 0) -> dict[str, Any]:
        return datapage.render_row(state.run(run_id).path, split, index)

    @app.get("/api/runs/{run_id}/source")
    def source(run_id: str, loc: str) -> dict[str, Any]:
        return datapage.source_row(state.run(run_id).path, loc)

    @app.post("/api/runs/{run_id}/chat/load")
    def chat_load(run_id: str, source: str = Body("adapter", embed=True)) -> dict[str, Any]:
        return state.chat.load(state.run(run_id).path, source).view()

    @app.get("/api/runs/{run_id}/chat/status")
    def chat_status(run_id: str, source: str = "adapter") -> dict[str, Any]:
        slot = state.chat.get(state.run(run_id).path, source)
        return slot.view() if slot else {"state": "not loaded"}

    @app.get("/api/runs/{run_id}/chat/stream")
    def chat_stream(run_id: str, which: str, prompt: str, source: str = "adapter") -> Response:
        slot = state.chat.get(state.run(run_id).path, source)
        if slot is None or slot.state != "ready" or which not in ("base", "tuned"):
            raise HTTPException(409, "load the models first")
        pieces = chatting.stream_reply(slot, which, prompt)
        return StreamingResponse(_events(pieces), media_type="text/event-stream")

    @app.get("/api/runs/{run_id}/feedback")
    def feedback(run_id: str) -> dict[str, Any]:
        return feedbackpage.exchanges(state.run(run_id).path)

    @app.post("/api/runs/{run_id}/feedback")
    def mark(run_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return feedbackpage.mark(
            state.run(run_id).path,
            str(body.get("request_id", "")),
            body.get("rating"),
            body.get("correction"),
        )

    @app.post("/api/runs/{run_id}/feedback/import")
    def import_feedback(run_id: str) -> dict[str, Any]:
        return feedbackpage.import_exchanges(state.run(run_id).path)


def _form_routes(app: FastAPI, state: State) -> None:
    @app.get("/api/schema")
    def schema() -> dict[str, Any]:
        return {"fields": form.schema_fields(), "cwd": str(state.cwd)}

    @app.post("/api/validate")
    def validate(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        values, target = _form_body(body, state)
        config, problems = form.check(values, target.parent)
        return {"ok": config is not None, "problems": problems, "yaml": form.config_yaml(values)}

    @app.post("/api/jobs")
    def start(body: dict[str, Any] = Body(...)) -> JSONResponse:
        values, target = _form_body(body, state)
        config, problems = form.check(values, target.parent)
        if config is None:
            return JSONResponse({"ok": False, "problems": problems}, status_code=422)
        form.write_config(target, form.config_yaml(values))
        state.watch(config.run_dir.parent)
        job = state.jobs.start(target, config.run_dir)
        return JSONResponse({"ok": True, "job": job.view(), "run": config.name})

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        found = state.jobs.jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        return found.view()

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        found = state.jobs.cancel(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        return found.view()


def _form_body(body: dict[str, Any], state: State) -> tuple[dict[str, str], Path]:
    values = {str(k): str(v) for k, v in (body.get("values") or {}).items()}
    name = values.get("name", "").strip() or "default"
    target = Path(str(body.get("config_path") or f"{name}.yaml")).expanduser()
    return values, target if target.is_absolute() else state.cwd / target


async def _events(pieces: Any) -> AsyncIterator[bytes]:
    """Server-sent events: one `data:` per decoded piece (JSON text), then `event: done`. Each
    piece is awaited in a thread, so a slow model never holds up the event loop."""
    done = object()
    try:
        while True:
            piece = await asyncio.to_thread(next, pieces, done)
            if piece is done:
                break
            if piece:
                yield f"data: {json.dumps(piece)}\n\n".encode()
    except Exception as exc:  # the reply failed mid-stream: say so in the stream
        yield f"event: failed\ndata: {json.dumps(str(exc))}\n\n".encode()
        return
    yield b"event: done\ndata: {}\n\n"
