"""What the OpenAI backend can check before any work: its client libraries are installed."""

from __future__ import annotations

import importlib.util

from tunewright.config import Config


def preflight(config: Config) -> list[str]:
    if config.train.backend != "openai":
        return []
    missing = [m for m in ("openai", "tiktoken") if importlib.util.find_spec(m) is None]
    if not missing:
        return []
    return [
        f"train.backend: openai needs {', '.join(missing)}, not installed "
        "(pip install 'tunewright[openai]')"
    ]
