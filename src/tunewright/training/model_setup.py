"""Loading the base model for a method and wrapping it with its PEFT adapter.

`peft_config` is the one translation from our `train` section to PEFT's config objects; every
method has the same shape: (base model, PEFT config or None for full fine-tuning).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tunewright.config import Config
from tunewright.errors import TunewrightError
from tunewright.methods import LORA_METHODS

# Non-reentrant checkpointing: torch's recommended variant, and the one that needs no input
# that requires gradients (frozen bases) and keeps keyword arguments.
CHECKPOINTING_KWARGS = {"use_reentrant": False}


class MethodUnavailableError(TunewrightError):
    """The chosen method cannot run on this machine or with this model."""


def check_method_available(config: Config, device: str) -> None:
    """Fail before any work when the method cannot run here, naming what would."""
    if config.train.method != "qlora":
        return
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MethodUnavailableError(
            "train.method qlora needs bitsandbytes, which is not installed",
            hint="pip install 'tunewright[quant]' (or bitsandbytes), or use train.method=lora.",
        )
    if device == "mps":
        raise MethodUnavailableError(
            "train.method qlora: bitsandbytes 4-bit does not run on Apple GPUs (mps)",
            hint="Use train.method=lora (the base stays in 16/32-bit) or train on CUDA/CPU.",
        )


@dataclass(frozen=True)
class Precision:
    """The dtypes a training run uses, resolved from `train.precision` and `model.dtype`."""

    compute: str  # the autocast dtype of forward and backward (float32: no autocast)
    base_weights: str  # what the base model's weights are loaded in (QLoRA: its compute dtype)
    trained_weights: str  # adapters, or the full model's master weights: always float32
    source: str  # "config", or "auto: <why>"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"precision {self.compute}: base weights {self.base_weights}, trained weights "
            f"{self.trained_weights} ({self.source})"
        )


def resolve_precision(config: Config) -> Precision:
    """`auto` takes the machine's rule (`tunewright.device`). Whatever is trained keeps float32
    master weights: 16-bit AdamW updates would round away. A frozen base is loaded in the
    compute dtype when that is bf16 (half the memory, no cast per matmul); an fp16 run loads it
    in float32 and lets autocast do the rest, since fp16 overflows where bf16 does not."""
    from tunewright.device import auto_precision

    precision, source = config.train.precision, "config"
    if precision == "auto":
        chosen = auto_precision()
        compute, source = chosen.dtype, f"auto: {chosen.reason}"
    else:
        compute = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision]
    if config.model.dtype != "auto":
        base = config.model.dtype
        source += f"; model.dtype {base}"
    elif config.train.method == "full" or compute == "float16":
        base = "float32"
    else:
        base = compute
    return Precision(compute, base, "float32", source)


def compute_dtype(config: Config) -> Any:
    import torch

    return getattr(torch, resolve_precision(config).compute)


def load_base_for_training(
    config: Config, folder: Any, levers: Mapping[str, Any], *, num_labels: int | None = None
) -> Any:
    """The base model, quantised to 4-bit NF4 for QLoRA, as a sequence classifier when
    `num_labels` is given (encoder classification), with the attention kernel and gradient
    checkpointing that `levers` chose."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    precision = resolve_precision(config)
    dtype = getattr(torch, precision.compute)
    kwargs: dict[str, Any] = {
        "dtype": getattr(torch, precision.base_weights),
        "attn_implementation": levers["attn_implementation"].value,
    }
    if config.train.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    if num_labels is not None:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=num_labels, **kwargs
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    checkpointing = bool(levers["gradient_checkpointing"].value)
    if config.train.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS,
        )
    elif checkpointing:
        enable_checkpointing(model)
    return model


def enable_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in the backward pass instead of keeping them. The
    non-reentrant variant works whether or not the layer inputs need gradients and passes the
    packed batches' keyword arguments through; input gradients on the embeddings keep PEFT's
    adapters in the graph of every recomputed layer (PEFT does the same when it wraps a model
    that already checkpoints)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's new name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=CHECKPOINTING_KWARGS)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
    model.enable_input_require_grads()


def peft_config(config: Config, task_type: str) -> Any | None:
    """Our `train` section -> a PEFT config (None for full fine-tuning)."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig

    train, lora = config.train, config.train.lora
    method = train.method
    if method == "full":
        return None
    if method in LORA_METHODS:
        return LoraConfig(
            task_type=task_type,
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            use_rslora=lora.use_rslora,
            use_dora=method == "dora",
            modules_to_save=["classifier"] if task_type == "SEQ_CLS" else None,
        )
    if task_type == "SEQ_CLS" and method != "ia3":
        raise MethodUnavailableError(
            f"train.method {method} is not supported for encoder classification",
            hint="Use train.method lora, dora, ia3 or full with an encoder.",
        )
    if method == "ia3":
        target = None if lora.target_modules == "all-linear" else lora.target_modules
        return IA3Config(
            task_type=task_type, target_modules=target, feedforward_modules=[] if target else None
        )
    if method == "prefix":
        return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=train.num_virtual_tokens)
    return PromptTuningConfig(task_type=task_type, num_virtual_tokens=train.num_virtual_tokens)


def wrap_model(config: Config, model: Any, task_type: str) -> Any:
    from peft import get_peft_model

    spec = peft_config(config, task_type)
    if spec is None:
        return model
    return get_peft_model(model, spec)


def skip_adapter_input_casts(model: Any) -> None:
    """Under 16-bit autocast, stop PEFT casting each LoRA layer's input to the adapter's float32:
    autocast casts it straight back to 16 bits for the matmul, so both copies are wasted (about
    2% of a bf16 LoRA step on the embedded model). The adapter weights stay float32."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False


def trainable_summary(model: Any) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_parameters": trainable, "total_parameters": total}
