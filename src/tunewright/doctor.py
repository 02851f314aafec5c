"""`tunewright doctor`: what this machine offers for fine-tuning, as one table of facts."""

from __future__ import annotations

import importlib.util
import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from tunewright.models import list_models, tunewright_home

# extra name -> import names it brings (see pyproject's optional-dependencies)
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "trackers": ("wandb", "mlflow"),
    "quant": ("bitsandbytes",),
    "eval": ("sacrebleu", "rouge_score", "scipy"),
    "openai": ("openai", "tiktoken"),
    "deepspeed": ("deepspeed",),
}
CORE = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


def collect_facts() -> dict[str, Any]:
    """Versions, device and its capabilities, memory, disk, embedded models and extras."""
    import psutil
    import torch

    home = tunewright_home()
    disk_probe = home if home.exists() else Path.home()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in CORE},
        "device": _device(torch),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "memory_available_gib": round(psutil.virtual_memory().available / 2**30, 1),
        "cpu_count": psutil.cpu_count(),
        "tunewright_home": str(home),
        "free_disk_gib": round(shutil.disk_usage(disk_probe).free / 2**30, 1),
        "models": list_models(),
        "extras": {
            extra: all(importlib.util.find_spec(mod) is not None for mod in modules)
            for extra, modules in EXTRAS.items()
        },
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _device(torch: Any) -> dict[str, Any]:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {
            "type": "cuda",
            "name": props.name,
            "count": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "bf16": bool(torch.cuda.is_bf16_supported()),
        }
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return {"type": "mps", "name": "Apple GPU", "count": 1, "cuda": None, "bf16": True}
    capability = torch.backends.cpu.get_cpu_capability()
    return {
        "type": "cpu",
        "name": platform.processor() or platform.machine(),
        "count": 1,
        "cuda": None,
        "cpu_capability": capability,
        # bf16 runs everywhere on CPU, but is only fast with native bf16 instructions.
        "bf16": "avx512_bf16" in _cpu_flags() or "amx" in capability.lower(),
    }


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()
