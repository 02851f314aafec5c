"""What the data stage can check before any work: the files a config points at exist."""

from __future__ import annotations

from tunewright.chat_templates import TEMPLATES, get_template
from tunewright.config import Config
from tunewright.config.data_source import source_path


def preflight(config: Config) -> list[str]:
    """Problems with the data files and chat template the config names, each by its key."""
    problems = []
    for key in ("train", "eval"):
        for i, item in enumerate(getattr(config.data, key)):
            path = source_path(item)
            if not config.resolve(path).exists():
                problems.append(f"data.{key}[{i}]: not found: {config.resolve(path)}")
    template = config.model.chat_template
    if template and get_template(template) is None and not config.resolve(template).is_file():
        problems.append(
            f"model.chat_template: '{template}' is not a registry template "
            f"({', '.join(TEMPLATES)}) and no file {config.resolve(template)} exists"
        )
    return problems
