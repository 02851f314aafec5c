"""Start the UI: pick the runs folders, make a token when bound beyond loopback, run uvicorn."""

from __future__ import annotations

from pathlib import Path

from tunewright.console import err, out
from tunewright.errors import TunewrightError


def serve(runs: list[Path] | None, host: str, port: int) -> None:
    try:
        import uvicorn

        from tunewright.ui.app import create_app
    except ImportError as exc:
        raise TunewrightError(
            f"the UI needs the serve extra ({exc.name} is missing)",
            hint="pip install 'tunewright[serve]'",
        ) from exc
    from tunewright.ui.catalog import default_runs_dirs
    from tunewright.ui.guard import is_loopback, new_token

    cwd = Path.cwd()
    runs_dirs = [p.resolve() for p in runs] if runs else default_runs_dirs(cwd)
    token = None if is_loopback(host) else new_token()
    app = create_app(runs_dirs, cwd, token)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    err.print(f"runs from: {', '.join(str(d) for d in runs_dirs)}", soft_wrap=True)
    if token:
        err.print(
            f"[yellow]bound to {host}:[/yellow] every request needs the token in this address "
            "(it is printed once, here, and not stored)",
            highlight=False,
        )
    out.print(f"tunewright ui: {address}", soft_wrap=True, highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
