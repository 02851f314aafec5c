"""The `serve` and `monitor` commands, registered on the main app by `register(app)`.

Same patterns as cli.py: heavy imports inside the commands, user errors as TunewrightError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tunewright.console import err
from tunewright.console import out as stdout
from tunewright.errors import TunewrightError


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("monitor")(monitor)


def serve(
    config: Annotated[
        Path | None,
        typer.Argument(help="YAML config: serve its run's trained model.", show_default=False),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Overrides such as serve.port=9000.", show_default=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Serve this model instead: an embedded name, a folder or a hub id."
        ),
    ] = None,
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", help="PEFT adapter over the model, [NAME=]PATH; repeatable."),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default serve.host, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default serve.port, 8000).")] = None,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log", help="Request log (default <run>/serve/requests.jsonl, else ./requests.jsonl)."
        ),
    ] = None,
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (chat, completions, models, metrics)."""
    from tunewright.config import ServeSection, load_config
    from tunewright.serving.stage import (
        default_log_path,
        serve_settings,
        target_from_args,
        target_from_config,
    )
    from tunewright.serving.stage import serve as run_server

    if config is None and model is None:
        raise TunewrightError(
            "nothing to serve", hint="Give a config (tunewright serve config.yaml) or --model NAME."
        )
    cfg = load_config(config, overrides) if config is not None else None
    section = cfg.serve if cfg else ServeSection()
    if model is not None:
        target = target_from_args(model, adapter)
    else:
        assert cfg is not None
        target = target_from_config(cfg, adapter)
    run_server(
        target,
        serve_settings(section),
        host or section.host,
        port if port is not None else section.port,
        log or default_log_path(cfg),
        console=err,
    )


def monitor(
    logfile: Annotated[
        Path, typer.Argument(help="Request log written by tunewright serve.", show_default=False)
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Training data to check input drift against (default: the run's)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for summary.txt and monitor.png.")
    ] = None,
) -> None:
    """Latency percentiles, errors, tokens/s, traffic and input drift from a request log."""
    from tunewright.serving.monitor import monitor_log

    result = monitor_log(logfile, data, out)
    stdout.print(escape(result.text), highlight=False, soft_wrap=True)
    stdout.print(f"wrote {result.summary_path} and {result.plot_path}")
