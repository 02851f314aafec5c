"""What the training loop consumes, whichever kind of model: built by `causal.build_causal_job`
or `encoder.build_encoder_job`, run by `stage.run_job`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Job:
    """Everything a run needs, whichever kind of model: built by `build_causal_job` or
    `build_encoder_job`, consumed by `_run_job`."""

    model: Any
    tokenizer: Any
    train_features: list[dict[str, Any]]
    eval_features: list[dict[str, Any]]
    collator: Any
    trainer_class: Any
    n_params: int
    extra: dict[str, Any]
    inputs: list[Path] = field(default_factory=list)
    # Every trainable parameter gets a gradient each step, so DDP need not search for idle ones.
    every_parameter_used: bool = False
    # The memory levers as resolved for this run (`training.levers`): key -> Lever.
    levers: dict[str, Any] = field(default_factory=dict)
    # A TRL config class and its arguments for the preference objectives (`training.preference`);
    # None: the HF `TrainingArguments`.
    args_class: type | None = None
    objective_args: dict[str, Any] = field(default_factory=dict)
