"""What serving can check before any work: its HTTP stack is installed."""

from __future__ import annotations

import importlib.util

from tunewright.config import Config

SERVE_PACKAGES = ("fastapi", "uvicorn", "prometheus_client", "llguidance")


def preflight(config: Config) -> list[str]:
    if config.train.backend != "local":
        return []  # an OpenAI-trained model is served by OpenAI
    missing = [m for m in SERVE_PACKAGES if importlib.util.find_spec(m) is None]
    if not missing:
        return []
    return [
        f"serve: serving the result needs {', '.join(missing)}, not installed "
        "(pip install 'tunewright[serve]')"
    ]
