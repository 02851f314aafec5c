"""Which accelerator this machine has, and the dtype `auto` stands for on it.

`auto` means the fastest precision that is safe for the device: bfloat16 on a CUDA GPU that
supports it and on a CPU that multiplies bf16 natively (AVX512-BF16 or AMX: a bf16 matmul ran
4.3x faster than fp32 on such a CPU here), float32 everywhere else (on CPUs without those
instructions bf16 is emulated and slower than fp32). Training, evaluation and serving all take
`auto` from here.

torch is imported inside the functions: the CLI imports this module and should start quickly.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Device = Literal["cuda", "mps", "cpu"]
# "1" or "0" overrides the CPU's bf16 detection (e.g. to compare, or to pin tests to fp32).
CPU_BF16_ENV = "TUNEWRIGHT_CPU_BF16"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def detect_device() -> Device:
    """The accelerator here: "cuda" when a CUDA GPU is visible, else "mps" on an Apple GPU,
    else "cpu"."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


@dataclass(frozen=True)
class AutoPrecision:
    """What `auto` resolved to here, and why (printed before training, kept in manifests)."""

    dtype: str  # "bfloat16" or "float32"
    reason: str


def auto_precision() -> AutoPrecision:
    import torch

    device = detect_device()
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return AutoPrecision("bfloat16", "CUDA GPU with bf16 support")
        return AutoPrecision("float32", "CUDA GPU without bf16 support")
    if device == "mps":
        return AutoPrecision("float32", "Apple GPU: training runs on the CPU in float32")
    fast, why = cpu_bf16()
    return AutoPrecision("bfloat16" if fast else "float32", why)


def auto_dtype() -> torch.dtype:
    """What `auto` precision and dtype mean on this machine (see the module docstring)."""
    import torch

    return getattr(torch, auto_precision().dtype)


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU multiplies bf16 natively, and the evidence."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"${CPU_BF16_ENV}={forced}"
    found = [flag for flag in CPU_BF16_FLAGS if flag in cpu_flags()]
    if found:
        return True, f"CPU with native bf16 ({', '.join(found)})"
    return False, "CPU without native bf16 (no avx512_bf16 or amx_bf16): bf16 would be emulated"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags torch sees (its own cpuinfo probes), plus Linux's /proc/cpuinfo;
    read once per process (every model load asks)."""
    import torch

    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    flags = {flag for flag, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
                break
    return frozenset(flags)
