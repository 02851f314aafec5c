"""Loading the base model for a method and wrapping it with its PEFT adapter.

`peft_config` is the one translation from our `train` section to PEFT's config objects; every
method has the same shape: (base model, PEFT config or None for full fine-tuning).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tunewright.config import Config
from tunewright.device import auto_dtype
from tunewright.errors import TunewrightError
from tunewright.methods import LORA_METHODS


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


def compute_dtype(config: Config) -> Any:
    import torch

    precision = config.train.precision
    if precision == "auto":
        return auto_dtype()
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def load_base_for_training(config: Config, folder: Any, *, num_labels: int | None = None) -> Any:
    """The base model, quantised to 4-bit NF4 for QLoRA, as a sequence classifier when
    `num_labels` is given (encoder classification)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    dtype = compute_dtype(config)
    # fp16 weights make AdamW updates underflow; keep fp32 master weights, autocast does the rest.
    load_dtype = torch.float32 if dtype == torch.float16 else dtype
    kwargs: dict[str, Any] = {"dtype": load_dtype}
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
    if config.train.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


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


def trainable_summary(model: Any) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_parameters": trainable, "total_parameters": total}
