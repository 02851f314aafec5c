"""What the OpenAI backend can check before any work: its client libraries are installed, and
`train.preference` asks nothing of OpenAI's DPO that it cannot do."""

from __future__ import annotations

import importlib.util

from tunewright.config import Config
from tunewright.config.openai_section import MAX_BETA


def preflight(config: Config) -> list[str]:
    if config.train.backend != "openai":
        return []
    return library_problems() + preference_problems(config)


def library_problems() -> list[str]:
    missing = [m for m in ("openai", "tiktoken") if importlib.util.find_spec(m) is None]
    if not missing:
        return []
    return [
        f"train.backend: openai needs {', '.join(missing)}, not installed "
        "(pip install 'tunewright[openai]')"
    ]


def preference_problems(config: Config) -> list[str]:
    """`train.preference` options OpenAI's DPO has no equivalent for: it takes beta alone, in
    (0, 2], with the sigmoid loss of the DPO paper. Sent as they are they would be dropped
    silently, so they are refused."""
    if config.train.objective != "dpo":
        return []
    options, problems = config.train.preference, []
    if options.beta != "auto" and options.beta > MAX_BETA:
        problems.append(
            f"train.preference.beta: OpenAI's DPO takes at most {MAX_BETA} (got {options.beta})"
        )
    if options.loss_type not in ("auto", "sigmoid"):
        problems.append(
            f"train.preference.loss_type: OpenAI's DPO has the sigmoid loss only (got "
            f"{options.loss_type}); leave it at auto with train.backend: openai"
        )
    if options.label_smoothing:
        problems.append(
            "train.preference.label_smoothing: OpenAI's DPO has none; leave it at 0 with "
            "train.backend: openai"
        )
    return problems
