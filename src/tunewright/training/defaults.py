"""`auto` training values, picked from model size and dataset size.

The seed's table for 7B/13B/70B models, extended down to small ones, then adjusted for the
number of examples: +2 epochs (max 5) under 500 examples, -1 (min 1) over 5000. A small dataset
then gets more epochs (up to MAX_EPOCHS) until training takes at least MIN_STEPS optimizer steps:
five passes over 81 rows at 16 per step are only 30 steps, too few to learn even a new name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tunewright.config import TrainSection
from tunewright.methods import PROMPT_METHODS

# (largest parameter count in the band, batch per device, accumulation, LoRA lr, epochs)
SIZE_TABLE = (
    (2e9, 8, 2, 2e-4, 3),  # up to ~1.5B: small models fit bigger batches
    (10e9, 4, 4, 2e-4, 3),  # ~7B
    (30e9, 2, 8, 1e-4, 2),  # ~13B
    (float("inf"), 1, 16, 5e-5, 1),  # ~70B
)
# Updating every weight moves further per step than a low-rank adapter does.
FULL_LR_FACTOR = 0.1
# Prompt-learning methods train very few parameters and need a larger step.
PROMPT_LR = 3e-2
# Measured on examples/identity (81 training rows, SmolLM2-135M-Instruct, LoRA; README
# "Choosing the number of steps"): at 30 steps eval loss was still falling 24% per epoch; 60
# taught the new name on the English held-out prompts only (4 of 4, Spanish 0 of 5); the issue's
# run on a similar dataset learned it in both languages at 90.
MIN_STEPS = 90
# More passes than this over a handful of rows memorises them instead of learning the task.
MAX_EPOCHS = 20
# An epoch of at most SHORT_EPOCH optimizer steps is evaluated EVALS_PER_EPOCH times, so the
# eval-loss curve the diagnosis reads has points; eval is a forward pass over a held-out tenth,
# about 1/30 of the epoch's training each time.
SHORT_EPOCH = 30
EVALS_PER_EPOCH = 2


@dataclass(frozen=True)
class Hyper:
    """Resolved training values; `sources` says which came from the config and, for `auto`
    ones, why (e.g. "auto: raised from 5 to reach 90 optimizer steps")."""

    epochs: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    eval_every: str | int  # "epoch" or optimizer steps
    save_every: str | int
    processes: int
    sources: dict[str, str]

    @property
    def global_batch(self) -> int:
        # examples per optimizer step = per-device batch x accumulation x processes
        return self.batch_size * self.grad_accum * self.processes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "global_batch": self.global_batch}


def resolve_hyper(train: TrainSection, n_params: int, n_examples: int, processes: int = 1) -> Hyper:
    _, batch, accum, lr, epochs = next(row for row in SIZE_TABLE if n_params <= row[0])
    if train.method == "full":
        lr *= FULL_LR_FACTOR
    elif train.method in PROMPT_METHODS:
        lr = PROMPT_LR
    if n_examples < 500:
        epochs = min(epochs + 2, 5)
    elif n_examples > 5000:
        epochs = max(epochs - 1, 1)
    # Keep the global batch the table intends when several processes share the work.
    accum = max(1, accum // processes)
    picked = {"epochs": epochs, "batch_size": batch, "grad_accum": accum, "learning_rate": lr}
    values, sources = {}, {}
    for key, auto_value in picked.items():
        value = getattr(train, key)
        values[key] = auto_value if value == "auto" else value
        sources[key] = "auto" if value == "auto" else "config"
    steps = steps_per_epoch(n_examples, values["batch_size"], values["grad_accum"], processes)
    # Measured for supervised fine-tuning only; a preference or GRPO step is another quantity.
    if train.epochs == "auto" and train.objective == "sft" and train.max_steps is None:
        values["epochs"], sources["epochs"] = _epochs_for_min_steps(values["epochs"], steps)
    values["eval_every"], sources["eval_every"] = _eval_every(train, steps)
    values["save_every"], sources["save_every"] = (
        (values["eval_every"], "auto: with eval_every, so the best checkpoint is tracked")
        if train.save_every == "auto"
        else (train.save_every, "config")
    )
    return Hyper(processes=processes, sources=sources, **values)


def _eval_every(train: TrainSection, steps: int) -> tuple[str | int, str]:
    """`train.eval_every`; auto evaluates short epochs (`steps` each) EVALS_PER_EPOCH times."""
    if train.eval_every != "auto":
        return train.eval_every, "config"
    if train.max_steps is not None or not steps or steps > SHORT_EPOCH:
        return "epoch", "auto"
    every = max(1, round(steps / EVALS_PER_EPOCH))
    return every, f"auto: {EVALS_PER_EPOCH} evaluations per {steps}-step epoch"


def steps_per_epoch(n_examples: int, batch_size: int, grad_accum: int, processes: int = 1) -> int:
    """Optimizer steps in one pass, counted as the HF Trainer counts them: each process gets
    its share of the examples, in batches, and a last partial accumulation still steps. 0 when
    the number of examples is not known yet."""
    if not n_examples:
        return 0
    per_process = -(-n_examples // processes)
    batches = -(-per_process // batch_size)
    return max(-(-batches // grad_accum), 1)


def _epochs_for_min_steps(epochs: int, steps: int) -> tuple[int, str]:
    """`epochs`, raised (up to MAX_EPOCHS) until `steps` per epoch add up to MIN_STEPS."""
    if not steps or epochs * steps >= MIN_STEPS:
        return epochs, "auto"
    raised = min(-(-MIN_STEPS // steps), MAX_EPOCHS)
    if raised * steps >= MIN_STEPS:
        # e.g. "auto: raised from 5 to reach 90 optimizer steps (6 per epoch)"
        return raised, f"auto: raised from {epochs} to reach {MIN_STEPS} optimizer steps " + (
            f"({steps} per epoch)"
        )
    return raised, (
        f"auto: raised from {epochs} to the cap of {MAX_EPOCHS}, {raised * steps} of the "
        f"{MIN_STEPS} optimizer steps wanted ({steps} per epoch)"
    )
