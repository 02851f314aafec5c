"""Distributed engines: which one a run asks for, the one translation from `train.distributed`,
`train.fsdp` and `train.deepspeed` to TrainingArguments, and which engine actually ran.

accelerate turns FSDP on only for accelerator devices: on CPU a Trainer asked for FSDP silently
trains with DDP. FSDP2's `fully_shard` itself works over gloo, so on CPU we hand accelerate the
FSDP plugin it dropped (`enable_fsdp_on_cpu`). Whatever was asked, the manifest records the
engine found on the model after training, with each rank's share of the parameters.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from typing import Any

from tunewright.config import Config
from tunewright.device import detect_device
from tunewright.errors import ConfigError, TunewrightError
from tunewright.training.distributed import DistContext, gather

# `sharding` -> FSDP2 `reshard_after_forward`: free the gathered parameters after each layer's
# forward (full_shard), or keep them until its backward (shard_grad_op, ZeRO-2-like).
RESHARD_AFTER_FORWARD = {"full_shard": True, "shard_grad_op": False, "hybrid_shard": True}


# Found by running each method under FSDP2 with 2 processes (tiny Llama, gloo).
FSDP_UNSUPPORTED = {
    # PEFT computes the virtual-token embeddings outside the sharded forward.
    "prefix": "the virtual-token encoder runs outside FSDP's forward (mixed Tensor/DTensor error)",
    "prompt": "the virtual-token encoder runs outside FSDP's forward (mixed Tensor/DTensor error)",
    # Training matched a single process, but reloading the sharded checkpoint (best model at
    # the end, --resume) left the 4-bit base wrong: eval loss 5.88 instead of 5.48.
    "qlora": "restoring its sharded checkpoints corrupts the 4-bit base weights",
}


class EngineUnavailableError(TunewrightError):
    """The requested distributed engine cannot run here."""


@dataclass(frozen=True)
class EnginePlan:
    """What the run asks HF for; `note` says why it differs from the config, if it does."""

    requested: str
    engine: str  # single, ddp, fsdp or deepspeed
    note: str | None = None
    hybrid: bool = False  # FSDP: shard within each machine, replicate across machines


def plan_engine(config: Config, context: DistContext) -> EnginePlan:
    requested = config.train.distributed
    if not context.distributed:
        note = None if requested == "ddp" else f"one process: {requested} has nothing to split"
        return EnginePlan(requested, "single", note)
    check_engine(config)
    sharding = config.train.fsdp.sharding
    if requested == "fsdp" and sharding == "no_shard":
        return EnginePlan(requested, "ddp", "fsdp no_shard replicates everything, i.e. DDP")
    if requested == "fsdp" and sharding == "hybrid_shard" and context.nnodes > 1:
        if detect_device() == "cuda":
            return EnginePlan(requested, requested, hybrid=True)
        # accelerate builds the 2-D (replicate x shard) mesh for accelerator devices only.
        note = "hybrid_shard needs GPUs; on CPU it shards over all processes (full_shard)"
        return EnginePlan(requested, requested, note)
    return EnginePlan(requested, requested)


def check_engine(config: Config) -> None:
    """Fail before any work when the engine cannot run this method (or is not installed)."""
    method, engine = config.train.method, config.train.distributed
    if engine == "fsdp" and method in FSDP_UNSUPPORTED:
        raise EngineUnavailableError(
            f"train.method {method} does not work with train.distributed fsdp: "
            f"{FSDP_UNSUPPORTED[method]}",
            hint="Use train.distributed=ddp (or deepspeed) for this method.",
        )
    if engine == "deepspeed":
        check_deepspeed_available()


def check_deepspeed_available() -> None:
    if importlib.util.find_spec("deepspeed") is None:
        raise EngineUnavailableError(
            "train.distributed deepspeed needs the deepspeed package, which is not installed",
            hint="pip install deepspeed (CPU-only installs work too), or use "
            "train.distributed=fsdp, which needs nothing extra.",
        )


# ---------------------------------------------------------------------------------------------
# The translation to TrainingArguments


def engine_arguments(
    config: Config, plan: EnginePlan, context: DistContext, model: Any
) -> dict[str, Any]:
    """TrainingArguments keywords for the planned engine (none for single and DDP)."""
    if plan.engine == "fsdp":
        arguments: dict[str, Any] = {"fsdp": True, "fsdp_config": fsdp_settings(config, model)}
        if plan.hybrid:
            from accelerate.parallelism_config import ParallelismConfig

            # HSDP: shard within a machine (fast links), replicate across machines.
            arguments["parallelism_config"] = ParallelismConfig(
                dp_replicate_size=context.nnodes, dp_shard_size=context.local_world_size
            )
        return arguments
    if plan.engine == "deepspeed":
        return {"deepspeed": deepspeed_settings(config)}
    return {}


def fsdp_settings(config: Config, model: Any) -> dict[str, Any]:
    """TrainingArguments `fsdp_config`: FSDP2, one unit per decoder layer plus the root."""

    fsdp = config.train.fsdp
    return {
        "version": 2,
        "reshard_after_forward": RESHARD_AFTER_FORWARD[fsdp.sharding],
        # Offloading moves shards from GPU to CPU memory; on the CPU there is nowhere to go.
        "cpu_offload": fsdp.cpu_offload and detect_device() == "cuda",
        # Each rank writes its own shard into checkpoints; the final weights are consolidated.
        "state_dict_type": "SHARDED_STATE_DICT",
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_layer_cls_to_wrap": decoder_layer_classes(model),
    }


def decoder_layer_classes(model: Any) -> list[str]:
    """The repeated block class(es) of the model (its `_no_split_modules`), PEFT wrapper or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = list(getattr(base, "_no_split_modules", None) or [])
    if not names:
        raise EngineUnavailableError(
            f"{type(base).__name__} does not name its decoder layer class (_no_split_modules), "
            "so FSDP cannot tell where to split it",
            hint="Use train.distributed=ddp or deepspeed with this model.",
        )
    return names


def deepspeed_settings(config: Config) -> dict[str, Any]:
    """TrainingArguments `deepspeed`: the user's JSON file, or ZeRO settings built from
    `train.deepspeed`. Batch sizes, clipping and precision are `auto`: the Trainer fills them
    from its own arguments, so they cannot disagree."""
    ds = config.train.deepspeed
    if ds.config:
        return _deepspeed_file(config)
    zero: dict[str, Any] = {"stage": ds.stage}
    settings: dict[str, Any] = {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
    }
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
        # The offloaded update runs DeepSpeed's own CPU AdamW (a C++ op built on first use).
        settings["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
        }
    if ds.offload_param:
        zero["offload_param"] = {"device": "cpu"}
    if ds.stage == 3:
        # Gather the split parameters when saving, so the final weights are whole.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return settings


def _deepspeed_file(config: Config) -> dict[str, Any]:
    from tunewright.training.model_setup import compute_dtype

    source = config.resolve(config.train.deepspeed.config or "")
    key = "train.deepspeed.config"
    if not source.is_file():
        raise ConfigError(key, [f"not found: {source}"])
    try:
        settings = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}:{exc.lineno}", [f"invalid JSON: {exc.msg}"]) from None
    dtype = str(compute_dtype(config)).removeprefix("torch.")
    wanted = {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}
    problems = [
        f"{name}.enabled is {json.dumps(enabled)} but train.precision resolves to {dtype}; "
        f'set it to {json.dumps(wanted[name])} or "auto"'
        for name in ("bf16", "fp16")
        if isinstance(enabled := (settings.get(name) or {}).get("enabled"), bool)
        and enabled != wanted[name]
    ]
    if problems:
        raise ConfigError(str(source), problems)
    return settings


# ---------------------------------------------------------------------------------------------
# Inside the Trainer


def enable_fsdp_on_cpu(trainer: Any) -> None:
    """Give accelerate back the FSDP plugin it drops on CPU, so FSDP2 really shards the model
    over gloo instead of the Trainer quietly running DDP. Called right after the Trainer
    creates its Accelerator, before anything reads the distributed type."""
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if not trainer.args.fsdp or state.distributed_type != DistributedType.MULTI_CPU:
        return
    plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    trainer.is_fsdp_enabled = True


def engine_report(trainer: Any, context: DistContext, plan: EnginePlan) -> dict[str, Any]:
    """The engine found on the trained model and how its parameters sit on each rank.

    Collective: every rank must call it."""
    ran = engine_that_ran(trainer)
    local, total = _parameter_counts(trainer.model)
    report: dict[str, Any] = {
        "engine": ran,
        "requested": plan.requested,
        "processes": context.world_size,
        "nodes": context.nnodes,
        "backend": context.backend,
        "parameters": total,
        # Under FSDP each rank holds about 1/processes of them; under DDP all of them.
        "parameters_per_rank": gather(context, local),
    }
    if plan.note:
        report["note"] = plan.note
    if ran == "fsdp":
        fsdp = trainer.args.fsdp_config
        report["fsdp"] = {
            "sharding": trainer_sharding(trainer),
            "wrapped": fsdp.get("transformer_layer_cls_to_wrap"),
            "cpu_offload": bool(fsdp.get("cpu_offload")),
        }
    if ran == "deepspeed":
        report["deepspeed"] = {"zero_stage": trainer.accelerator.state.deepspeed_plugin.zero_stage}
    return report


def engine_that_ran(trainer: Any) -> str:
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel

    if getattr(trainer, "is_deepspeed_enabled", False):
        return "deepspeed"
    wrapped = trainer.model_wrapped
    if any(isinstance(module, FSDPModule) for module in wrapped.modules()):
        return "fsdp"
    return "ddp" if isinstance(wrapped, DistributedDataParallel) else "single"


def trainer_sharding(trainer: Any) -> str:
    if getattr(trainer.accelerator, "parallelism_config", None) is not None and (
        trainer.accelerator.parallelism_config.dp_replicate_enabled
    ):
        return "hybrid_shard"
    return (
        "full_shard" if trainer.args.fsdp_config.get("reshard_after_forward") else "shard_grad_op"
    )


def _parameter_counts(model: Any) -> tuple[int, int]:
    """(elements held by this rank, elements of the whole model)."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    for module in model.modules():
        # A forward without backward (the final evaluation) leaves the root unit gathered.
        if isinstance(module, FSDPModule):
            module.reshard()
    local = total = 0
    for parameter in model.parameters():
        if hasattr(parameter, "ds_numel"):  # DeepSpeed ZeRO-3 keeps a partition in ds_tensor
            total += parameter.ds_numel
            local += parameter.ds_tensor.numel()
        elif isinstance(parameter, DTensor):  # FSDP2: numel() is the global size
            total += parameter.numel()
            local += parameter.to_local().numel()
        else:
            total += parameter.numel()
            local += parameter.numel()
    return local, total


def full_state_dict(trainer: Any, engine: str) -> dict[str, Any] | None:
    """The whole weights, on rank 0, when the engine split them (None: the model's own
    `state_dict` is already whole). Collective: every rank must call it."""
    if engine == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(
            trainer.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        return _retie(trainer.model, state)
    if engine == "deepspeed" and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3:
        return trainer.accelerator.get_state_dict(trainer.model_wrapped)
    return None


def _retie(model: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Gathered copies of tied weights (embeddings and LM head) are separate tensors; share
    them again so `save_pretrained` writes the tied weight once, as a single process does."""
    first_name: dict[int, str] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        first = first_name.setdefault(id(parameter), name)
        if first != name and first in state and name in state:
            state[name] = state[first]
    return state
