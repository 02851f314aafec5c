"""What the OpenAI backend can check before any work: its client libraries are installed,
`train.preference` asks nothing of OpenAI's DPO that it cannot do, and `train.objective: grpo`
has an OpenAI grader, model and options for reinforcement fine-tuning."""

from __future__ import annotations

import importlib.util

from tunewright.config import Config
from tunewright.config.openai_section import MAX_BETA, RFT_MODEL


def preflight(config: Config) -> list[str]:
    if config.train.backend != "openai":
        return []
    return library_problems() + preference_problems(config) + reinforcement_problems(config)


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
    if options.reference_free:
        problems.append(
            "train.preference.reference_free: OpenAI's DPO always uses its reference model; "
            "leave it off with train.backend: openai"
        )
    return problems


def reinforcement_problems(config: Config) -> list[str]:
    """What OpenAI's reinforcement fine-tuning cannot do for `train.objective: grpo`: graders
    with no OpenAI equivalent, a model it does not run on, and `train.grpo` options it has no
    knob for (it picks its own samples per prompt, answer length and KL penalty; sent nowhere,
    they would be dropped silently, so they are refused)."""
    if config.train.objective != "grpo":
        return []
    from tunewright.openai_ft.graders import grader_problems
    from tunewright.openai_ft.tokens import model_info

    problems = grader_problems(config)
    model = config.openai.model
    if model_info(model).known:  # the supervised models of tokens.MODEL_LIMITS
        problems.append(
            f"openai.model: {model} has no reinforcement fine-tuning; train.objective: grpo "
            f"needs a reasoning model: openai.model: {RFT_MODEL}"
        )
    for key, value in config.train.grpo.model_dump().items():
        if value != "auto":
            problems.append(
                f"train.grpo.{key}: OpenAI's reinforcement fine-tuning has no such setting; "
                "leave it at auto with train.backend: openai"
            )
    return problems
