"""What the data stage can check before any work: the files a config points at exist."""

from __future__ import annotations

from tunewright.config import Config


def preflight(config: Config) -> list[str]:
    """Problems with the data files and chat template the config names, each by its key."""
    problems = []
    for key in ("train", "eval"):
        for i, item in enumerate(getattr(config.data, key)):
            if not config.resolve(item).exists():
                problems.append(f"data.{key}[{i}]: not found: {config.resolve(item)}")
    template = config.model.chat_template
    if template and not config.resolve(template).is_file():
        problems.append(f"model.chat_template: not found: {config.resolve(template)}")
    return problems
