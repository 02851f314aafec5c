"""The `openai` config section: what `tunewright openai submit` sends to OpenAI."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tunewright.config.fields import Auto, PositiveFloat, PositiveInt, Section

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
# OpenAI accepts 1-25 epochs; its default picks within the same range.
Epochs = Annotated[int, Field(ge=1, le=25)]
# OpenAI's DPO takes beta in (0, 2]; train.preference.beta is checked against it.
MAX_BETA = 2.0

OpenAIMethod = Literal["supervised", "dpo", "reinforcement"]
# train.objective -> OpenAI's fine-tuning method. OpenAI has no ORPO, SimPO or KTO; grpo becomes
# its reinforcement fine-tuning, with train.rewards as its grader (openai_ft.graders).
OPENAI_METHODS: dict[str, OpenAIMethod] = {
    "sft": "supervised",
    "dpo": "dpo",
    "grpo": "reinforcement",
}
# OpenAI runs reinforcement fine-tuning on reasoning models only; o4-mini is the one it offers.
RFT_MODEL = "o4-mini-2025-04-16"


def openai_objective_problem(objective: str) -> str | None:
    """Why `train.objective` cannot run with `train.backend: openai`, or None when it can."""
    if objective in OPENAI_METHODS:
        return None
    *others, last = [
        f"{theirs} (train.objective: {ours})" for ours, theirs in OPENAI_METHODS.items()
    ]
    offered = f"{', '.join(others)} and {last}"
    return (
        f"train.objective: {objective} has no OpenAI fine-tuning method; OpenAI offers "
        f"{offered}: use one of them, or train.backend: local to train {objective} here"
    )


class OpenAIHyperparameters(Section):
    n_epochs: Epochs | Auto = Field(
        "auto",
        description="Passes over the training file (1-25); auto lets OpenAI pick from the "
        "example count (3, more for small files, fewer for large ones).",
    )
    batch_size: PositiveInt | Auto = Field(
        "auto", description="Examples per step; auto lets OpenAI pick."
    )
    learning_rate_multiplier: PositiveFloat | Auto = Field(
        "auto", description="Scales OpenAI's base learning rate; auto lets OpenAI pick."
    )


class OpenAISection(Section):
    model: str = Field(
        DEFAULT_MODEL,
        description="Base model to fine-tune on OpenAI, e.g. gpt-4o-mini-2024-07-18, "
        "gpt-4.1-mini-2025-04-14, or a fine-tuned model id (ft:...) to continue from. "
        f"train.objective: grpo (reinforcement fine-tuning) needs a reasoning model: {RFT_MODEL}.",
    )
    suffix: str | None = Field(
        None,
        max_length=64,
        description="Up to 64 characters added to the fine-tuned model's name.",
    )
    hyperparameters: OpenAIHyperparameters = Field(
        default_factory=OpenAIHyperparameters,
        description="Training hyperparameters (the method comes from train.objective, DPO's "
        "beta from train.preference.beta).",
    )
    seed: int | None = Field(
        None, description="Seed for the job; empty uses the config's top-level `seed`."
    )
    validation: bool = Field(
        True,
        description="Upload the data stage's eval split as the job's validation file "
        "(OpenAI then reports validation loss).",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        min_length=1,
        description="Environment variable holding the API key (the key itself is never "
        "read from or written to a config).",
    )
    base_url: str | None = Field(
        None,
        description="API base URL for OpenAI-compatible services; empty uses OPENAI_BASE_URL "
        "or OpenAI itself.",
    )
    wait: bool = Field(
        False, description="Follow the job after submitting until it ends (same as --wait)."
    )
    poll_seconds: float = Field(
        10.0, gt=0, description="Seconds between status checks while following a job."
    )
