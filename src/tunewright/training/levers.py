"""The memory levers: gradient checkpointing, the attention kernel, the optimizer and Liger's
fused loss.

Each is resolved once, before the model loads, to a value and the reason for it ("config", or
"auto: <why>"): the model loader, the Trainer arguments and `tunewright plan` read that, and
the train manifest records it under `levers`. What cannot run on this machine is refused before
any work (`lever_problems`, also part of `tunewright validate`), each problem named by its key.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from tunewright.config import Config
from tunewright.errors import ConfigError

# PEFT refuses prefix tuning under gradient checkpointing (its key/value cache is not recomputed).
NO_CHECKPOINTING = ("prefix",)
BNB_OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit")


@dataclass(frozen=True)
class Lever:
    """A resolved lever: its value and why."""

    value: Any
    source: str  # "config", or "auto: <why>"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Levers = dict[str, Lever]  # keyed by the lever's config key


def resolve_levers(config: Config, checkpointing: Lever, *, causal: bool = True) -> Levers:
    """Every lever for a run; `checkpointing` comes from the memory model
    (`memory.causal_checkpointing`) or, for encoders, from `encoder_checkpointing`."""
    from tunewright.device import detect_device
    from tunewright.models import resolve_attn_implementation
    from tunewright.training.model_setup import resolve_precision

    device = detect_device()
    compute = resolve_precision(config).compute
    attention, why = resolve_attn_implementation(config.model.attn_implementation, compute, device)
    return {
        "gradient_checkpointing": checkpointing,
        "attn_implementation": Lever(attention, why),
        "optimizer": resolve_optimizer(config),
        "liger": liger_lever(config, device, causal=causal),
    }


def resolve_optimizer(config: Config) -> Lever:
    """`auto`: torch's fused AdamW (same update, one kernel over all parameters: 0.013 s against
    0.10 s per step for 4.9M LoRA parameters on a 2-core CPU), except where FSDP shards the
    parameters or DeepSpeed wraps the optimizer, which get the plain one."""
    setting = config.train.optimizer
    if setting != "auto":
        return Lever(setting, "config")
    if config.train.distributed in ("fsdp", "deepspeed"):
        return Lever("adamw", f"auto: train.distributed {config.train.distributed}")
    return Lever("adamw_fused", "auto: fused AdamW, same maths, fewer kernel launches")


def encoder_checkpointing(config: Config) -> Lever:
    setting = config.train.gradient_checkpointing
    if setting != "auto":
        return Lever(setting, "config")
    return Lever(False, "auto: the plan has no memory model for encoders")


def liger_lever(config: Config, device: str, *, causal: bool = True) -> Lever:
    setting = config.train.liger
    if not causal:
        return Lever(False, "not used: Liger's kernels are for causal LMs")
    if setting != "auto":
        return Lever(setting, "config")
    if device != "cuda":
        return Lever(False, f"auto: Liger's kernels need a CUDA GPU, this is {device}")
    if importlib.util.find_spec("liger_kernel") is None:
        return Lever(False, "auto: the liger-kernel package is not installed")
    return Lever(True, "auto: CUDA GPU with liger-kernel")


def loaded_levers(levers: Levers, model: Any) -> Levers:
    """`levers` with the attention kernel the loaded model has (auto leaves the choice between
    sdpa and eager to transformers)."""
    attention = levers["attn_implementation"]
    loaded = getattr(model.config, "_attn_implementation", None) or attention.value
    return {**levers, "attn_implementation": replace(attention, value=loaded)}


def lever_record(levers: Levers) -> dict[str, dict[str, Any]]:
    """The manifest's `levers`: each key's value and why."""
    return {key: lever.as_dict() for key, lever in levers.items()}


def describe(levers: Levers) -> str:
    """One line for the printed plan: `gradient_checkpointing false (auto: ...), ...`."""
    return ", ".join(
        f"{key} {_plain(lever.value)} ({lever.source})" for key, lever in levers.items()
    )


def _plain(value: Any) -> str:
    if value is None:
        return "default"
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------------------------------------
# What this machine cannot run


def lever_problems(config: Config, device: Callable[[], str] | None = None) -> list[str]:
    """Levers set to something this machine cannot run, each named by its YAML key. `device`
    is asked only when a check needs it (finding it imports torch)."""
    from tunewright.device import detect_device

    where = device or detect_device
    train, problems = config.train, []
    if train.gradient_checkpointing is True and train.method in NO_CHECKPOINTING:
        problems.append(
            f"train.gradient_checkpointing: PEFT's {train.method} tuning does not work with "
            "gradient checkpointing; set it to false or auto"
        )
    if config.model.attn_implementation == "flash_attention_2":
        problems += _flash_attention_problems(config, where())
    if train.optimizer in BNB_OPTIMIZERS:
        problems += _bnb_optimizer_problems(train.optimizer, where())
    if train.liger is True:
        problems += _liger_problems(where())
    return problems


def check_levers_available(config: Config, device: str) -> None:
    """Fail before any work when a lever cannot run here."""
    problems = lever_problems(config, lambda: device)
    if problems:
        raise ConfigError("config", problems, hint="Each line names the key to change.")


def _flash_attention_problems(config: Config, device: str) -> list[str]:
    from tunewright.training.model_setup import resolve_precision

    key, problems = "model.attn_implementation: flash_attention_2", []
    if importlib.util.find_spec("flash_attn") is None:
        problems.append(f"{key} needs the flash_attn package, which is not installed")
    if device != "cuda":
        problems.append(f"{key} runs on CUDA GPUs only, this is {device}; use sdpa or auto")
        return problems
    compute = resolve_precision(config).compute
    if compute not in ("bfloat16", "float16"):
        problems.append(f"{key} needs 16-bit compute, but train.precision resolves to {compute}")
    return problems


def _bnb_optimizer_problems(optimizer: str, device: str) -> list[str]:
    key = f"train.optimizer: {optimizer}"
    if importlib.util.find_spec("bitsandbytes") is None:
        return [f"{key} needs bitsandbytes, which is not installed (the quant extra)"]
    if optimizer.startswith("paged_") and device != "cuda":
        # Off CUDA bitsandbytes only warns and falls back to the unpaged optimizer: refuse.
        return [
            f"{key} pages optimizer states between GPU and CPU memory, on CUDA only; this is "
            f"{device}: use adamw_8bit (8-bit states, runs on the CPU)"
        ]
    return []


def _liger_problems(device: str) -> list[str]:
    if device != "cuda":
        return [
            f"train.liger: true needs a CUDA GPU (Liger's kernels are Triton), this is {device}"
        ]
    if importlib.util.find_spec("liger_kernel") is None:
        return ["train.liger: true needs the liger-kernel package, which is not installed"]
    return []
