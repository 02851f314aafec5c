"""`auto` training values, picked from model size and dataset size.

The seed's table for 7B/13B/70B models, extended down to small ones, then adjusted for the
number of examples: +2 epochs (max 5) under 500 examples, -1 (min 1) over 5000.
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


@dataclass(frozen=True)
class Hyper:
    """Resolved training values; `sources` says which came from `auto`."""

    epochs: int
    batch_size: int
    grad_accum: int
    learning_rate: float
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
    return Hyper(processes=processes, sources=sources, **values)
