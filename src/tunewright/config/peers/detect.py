"""Telling a LLaMA-Factory or Axolotl config from ours by its top-level keys, so every command
that reads a config can say what it is and which command imports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LLAMA_FACTORY = "LLaMA-Factory"
AXOLOTL = "Axolotl"
# Keys no tunewright config has at the top level; two of a peer's are enough to tell.
_MARKERS = {
    LLAMA_FACTORY: {
        "model_name_or_path",
        "stage",
        "finetuning_type",
        "template",
        "dataset",
        "cutoff_len",
        "lora_target",
        "per_device_train_batch_size",
    },
    AXOLOTL: {
        "base_model",
        "datasets",
        "micro_batch_size",
        "sequence_len",
        "adapter",
        "num_epochs",
        "lora_r",
        "val_set_size",
    },
}


def foreign_peer(raw: dict[str, Any]) -> str | None:
    """The tool whose config `raw` is, or None."""
    keys = set(raw)
    for peer, markers in _MARKERS.items():
        if len(keys & markers) >= 2:
            return peer
    return None


def import_command(path: Path) -> str:
    """The exact command that imports the config at `path`."""
    return f"tunewright import-config {path} --out {default_output(path)}"


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.tunewright.yaml")
