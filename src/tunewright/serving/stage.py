"""`tunewright serve`: an OpenAI-compatible HTTP API over a model and its adapters.

Read top to bottom in `serve`: bind the port (so a busy port fails before the slow model load),
load the model with its adapters, build the app and run it with uvicorn until interrupted. What
to serve comes from `target_from_config` (a run's merged model, else its adapter over the base,
else its fully fine-tuned model) or `target_from_args` (`--model` and `--adapter`); the limits and
API keys from `serve_settings`. The parts live in `tunewright.serving`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from rich.console import Console

from tunewright.config import Config, ServeSection
from tunewright.errors import TunewrightError
from tunewright.models import EMBEDDED
from tunewright.runs import (
    ADAPTER,
    REQUEST_LOG,
    merged_dir,
    request_log,
    run_of_adapter,
    trained_output,
)
from tunewright.serving.app import ServeSettings
from tunewright.serving.pool import AdapterSpec, ServeTarget

API_KEYS_ENV = "TUNEWRIGHT_API_KEYS"


def serve(
    target: ServeTarget,
    settings: ServeSettings,
    host: str,
    port: int,
    log_path: Path | None,
    console: Console | None = None,
) -> None:
    """Serve `target` on host:port until interrupted (Ctrl+C)."""
    import uvicorn

    from tunewright.serving.app import build_app
    from tunewright.serving.pool import load_pool

    console = console or Console(stderr=True)
    _bound_kernel_cache()
    sock = bind(host, port)
    with console.status(f"loading {target.base}"):
        pool = load_pool(target)
    app = build_app(pool, settings, log_path)
    _announce(console, target, settings, host, sock.getsockname()[1], log_path)
    # No access log: the request log has a line per request already, and a console line per
    # request costs the event loop time under load.
    config = uvicorn.Config(app, log_level="info", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


# oneDNN (torch's CPU matmuls, bf16 among them) caches a built kernel, with its buffers, for
# every new matrix shape, up to 1,024 of them by default; a server meets a new shape with every
# batch size and prompt width, and its memory grew for as long as new shapes came. 64 kernels
# hold every shape of a few recent batch sizes (each forward uses ~7); rebuilding one costs far
# less than a decoding step. Read by oneDNN when it first builds a kernel, so set before
# loading; a value the user set wins.
KERNEL_CACHE_CAPACITY = "64"


def _bound_kernel_cache() -> None:
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", KERNEL_CACHE_CAPACITY)


def target_from_config(config: Config, adapters: list[str] | None = None) -> ServeTarget:
    """The run's result: `export/merged` if present, else `train/adapter` over the base model
    (served as the base's id and the run name), else `train/model`."""
    from tunewright.models import resolve_model

    extra = tuple(adapter_spec(text) for text in adapters or [])
    loading = {"dtype": config.model.dtype, "attn_implementation": config.model.attn_implementation}
    merged = merged_dir(config)
    if (merged / "config.json").is_file():
        return _checked(ServeTarget(merged, config.name, extra, **loading))
    trained = trained_output(config)
    if trained is not None and trained.name == ADAPTER:
        base = resolve_model(config.model.name)
        tuned = AdapterSpec(config.name, trained)
        return _checked(ServeTarget(base, model_id(config.model.name), (tuned, *extra), **loading))
    if trained is not None:
        return _checked(ServeTarget(trained, config.name, extra, **loading))
    raise TunewrightError(
        f"nothing to serve in {config.run_dir}: no export/merged, train/adapter or train/model",
        hint="Train first (`tunewright run CONFIG`), or serve a model as it is: "
        f"`tunewright serve --model {config.model.name}`.",
    )


def target_from_args(model: str, adapters: list[str] | None = None) -> ServeTarget:
    """`--model NAME_OR_PATH` (an embedded name, a model folder or a hub id) and `--adapter`s."""
    from tunewright.models import resolve_model

    extra = tuple(adapter_spec(text) for text in adapters or [])
    return _checked(ServeTarget(resolve_model(model), model_id(model), extra))


def adapter_spec(text: str) -> AdapterSpec:
    """`PATH` or `NAME=PATH`; the id defaults to the folder's name, or the run's name for a
    tunewright `<run>/train/adapter` folder."""
    name, sep, path = text.partition("=")
    if not sep or Path(text).expanduser().exists():
        name, path = "", text
    folder = Path(path).expanduser().resolve()
    if not (folder / "adapter_config.json").is_file():
        raise TunewrightError(
            f"--adapter {text}: {folder} is not a PEFT adapter folder (no adapter_config.json)",
            hint="Point it at <run>/train/adapter or a folder written by PEFT's save_pretrained.",
        )
    if not name:
        run = run_of_adapter(folder)
        name = run.name if run is not None else folder.name
    return AdapterSpec(name, folder)


def model_id(name: str) -> str:
    """The id clients use for a model: embedded names and hub ids as given, a folder's name."""
    if name in EMBEDDED or not Path(name).expanduser().exists():
        return name
    return Path(name).expanduser().resolve().name


def serve_settings(section: ServeSection) -> ServeSettings:
    """Limits and API keys: `serve.api_keys` plus $TUNEWRIGHT_API_KEYS (comma-separated)."""
    from_env = [key.strip() for key in os.environ.get(API_KEYS_ENV, "").split(",")]
    keys = [key.get_secret_value() for key in section.api_keys] + [k for k in from_env if k]
    return ServeSettings(
        api_keys=tuple(dict.fromkeys(keys)),
        max_prompt_tokens=section.max_prompt_tokens,
        max_tokens=section.max_tokens,
        log_content=section.log_content,
        batch_size=section.batch_size,
        max_body_bytes=section.max_body_bytes,
        docs=section.docs,
        metrics_key=section.metrics_key.get_secret_value() if section.metrics_key else None,
        max_queue=section.max_queue,
        request_timeout_s=section.request_timeout_s,
        max_messages=section.max_messages,
        max_choices=section.max_choices,
    )


def default_log_path(config: Config | None) -> Path:
    return request_log(config) if config else Path(REQUEST_LOG).resolve()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise TunewrightError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="Pick another port with --port (or serve.port), or stop what is using it.",
        ) from None
    sock.listen(128)
    return sock


def _checked(target: ServeTarget) -> ServeTarget:
    ids = target.model_ids
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise TunewrightError(
            f"two served models would share the id {', '.join(repeated)}",
            hint="Name adapters explicitly: --adapter NAME=PATH.",
        )
    return target


def _announce(
    console: Console,
    target: ServeTarget,
    settings: ServeSettings,
    host: str,
    port: int,
    log_path: Path | None,
) -> None:
    shown = f"[{host}]" if ":" in host else host
    console.print(f"serving {', '.join(target.model_ids)} at http://{shown}:{port}/v1")
    keys = len(settings.api_keys)
    console.print(f"API keys: {keys} accepted" if keys else "API keys: none (open to anyone)")
    console.print(f"request log: {log_path}" + (" (with content)" if settings.log_content else ""))
    if not keys and not _is_loopback(host):
        console.print(
            f"[yellow]warning:[/yellow] {host} is reachable from other machines and no API key "
            f"is set; set serve.api_keys or {API_KEYS_ENV}."
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
