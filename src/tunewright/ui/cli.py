"""The `ui` command, registered on the main app by `register(app)`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    runs: Annotated[
        list[Path] | None,
        typer.Option(
            "--runs",
            help="Runs folder to show; repeatable (default: ./runs and the runs folder of every "
            "config found below the current folder).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback requires a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
) -> None:
    """A web UI: runs and their comparison, live training curves, data reports, base vs tuned
    chat, feedback on served requests, and a form that starts new runs."""
    from tunewright.ui.server import serve

    serve(runs, host, port)
