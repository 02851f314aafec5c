"""Which accelerator this machine has, and the dtype `auto` stands for on it.

torch is imported inside the functions: the CLI imports this module and should start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Device = Literal["cuda", "mps", "cpu"]


def detect_device() -> Device:
    """The accelerator here: "cuda" when a CUDA GPU is visible, else "mps" on an Apple GPU,
    else "cpu"."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def auto_dtype() -> torch.dtype:
    """What `auto` precision and dtype mean: bfloat16 on a CUDA GPU that supports it, else
    float32 (bf16 matmuls are slow on most CPUs)."""
    import torch

    bf16 = detect_device() == "cuda" and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16 else torch.float32
