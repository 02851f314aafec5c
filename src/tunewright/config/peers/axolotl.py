"""Axolotl's YAML (`axolotl train x.yaml`) -> our config. Every key either has a handler here
or is reported as unknown; `datasets` and `test_datasets` go through `axolotl_datasets`."""

from __future__ import annotations

from typing import Any

from tunewright.config.peers import common
from tunewright.config.peers.axolotl_datasets import source_entries
from tunewright.config.peers.translation import (
    Handler,
    Translation,
    model_name,
    translate_keys,
)
from tunewright.config.peers.translation import common as _common
from tunewright.config.peers.translation import simple as _simple

OBJECTIVES = {"dpo": "dpo", "ipo": "dpo", "orpo": "orpo", "kto": "kto", "simpo": "simpo"}


def translate(raw: dict[str, Any], t: Translation) -> None:
    consumed = _method(raw, t)
    translate_keys(raw, t, consumed, HANDLERS, IGNORED, UNSUPPORTED, _wandb)


def _wandb(key: str) -> str | None:
    return (
        "W&B settings come from WANDB_* environment variables" if key.startswith("wandb_") else None
    )


def _method(raw: dict[str, Any], t: Translation) -> set[str]:
    """adapter, load_in_4bit, peft_use_dora and rl decide method and objective, so they are
    read before the rest; returns the keys read."""
    adapter = raw.get("adapter")
    read = ["adapter"] if "adapter" in raw else []
    if adapter in ("lora", "qlora"):
        method = adapter
        if raw.get("load_in_4bit"):
            method, read = "qlora", [*read, "load_in_4bit"]
        if raw.get("peft_use_dora") and method == "lora":
            method, read = "dora", [*read, "peft_use_dora"]
        t.put("train.method", method, ", ".join(read))
    elif adapter is None:
        t.put("train.method", "full", "adapter (unset: full fine-tuning)")
    else:
        t.unsupported("adapter", f"{adapter} is not offered; use lora or qlora")
    rl = raw.get("rl")
    if rl is not None:
        read.append("rl")
        if str(rl) in OBJECTIVES:
            t.put("train.objective", OBJECTIVES[str(rl)], "rl")
            if rl == "ipo":
                t.put("train.preference.loss_type", "ipo", "rl")
        else:
            t.unsupported(
                "rl", f"{rl} is not offered; train.objective takes dpo, orpo, kto, simpo or grpo"
            )
    return set(read)


def _datasets(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    preference = raw.get("rl") is not None
    target = "data.train" if key == "datasets" else "data.eval"
    entries = source_entries(t, key, value, preference)
    if entries:
        t.put(target, entries, key)


def _chat_template(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if value == "tokenizer_default":
        t.ignored(key, "the tokenizer's own template is the default")
    elif value == "jinja":
        jinja = raw.get("chat_template_jinja")
        if not jinja:
            t.unsupported(key, "jinja needs chat_template_jinja")
        elif "{" in str(jinja):  # the template text itself: written beside the config
            t.files["chat_template.jinja"] = str(jinja)
            t.put(
                "model.chat_template",
                "chat_template.jinja",
                "chat_template, chat_template_jinja",
                "written to chat_template.jinja beside the config",
            )
        else:
            t.put("model.chat_template", t.path(str(jinja)), "chat_template, chat_template_jinja")
    else:
        common.template(t, key, value)


def _precision(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if value == "auto":
        t.put("train.precision", "auto", key)
    elif value:
        t.put("train.precision", "bf16" if key == "bf16" else "fp16", key)
    else:
        t.ignored(key, "false is the default")


def _attention(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if not value:
        t.ignored(key, "false is the default")
    elif key == "flash_attention":
        t.put("model.attn_implementation", "flash_attention_2", key)
    elif key == "sdp_attention":
        t.put("model.attn_implementation", "sdpa", key)
    else:
        t.unsupported(key, "xformers is not offered; auto picks flash-attention or sdpa")


def _lora_target(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if key == "lora_target_linear":
        if value:
            t.put("train.lora.target_modules", "all-linear", key)
        else:
            t.ignored(key, "lora_target_modules names the modules")
    elif not raw.get("lora_target_linear"):
        names = [value] if isinstance(value, str) else list(value or [])
        t.put("train.lora.target_modules", names, key)
    else:
        t.ignored(key, "lora_target_linear: true targets every linear layer already")


def _quantized(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if not value:
        t.ignored(key, "false is the default")
    elif key == "load_in_4bit":
        t.unsupported(key, "4-bit loading without an adapter is not offered; use adapter: qlora")
    else:
        t.unsupported(key, "8-bit loading is not offered; QLoRA (4-bit, with LoRA) is")


def _eval_per_epoch(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    target = "train.eval_every" if key == "evals_per_epoch" else "train.save_every"
    if int(value) == 1:
        t.put(target, "epoch", key)
    else:
        t.unsupported(
            key, f"{target} takes epoch or a step count ({key.replace('s_per_epoch', '_steps')})"
        )


def _fsdp_config(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    options = dict(value or {})
    if options.get("fsdp_offload_params") or options.get("offload_params"):
        t.put("train.fsdp.cpu_offload", True, key)
    rest = set(options) - {"fsdp_offload_params", "offload_params"}
    if rest:
        t.ignored(key, f"{', '.join(sorted(rest))}: tunewright wraps each decoder layer itself")


def _plugins(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    for plugin in value or []:
        if "liger" in str(plugin).lower():
            t.put("train.liger", True, key, "CUDA only; on a CPU tunewright keeps its own head")
        else:
            t.unsupported(f"{key}: {plugin}", "plugins are not offered")


def _liger_option(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    t.ignored(key, "train.liger turns on Liger's fused cross-entropy and kernels together")


def _val_set_size(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    number = float(value)
    if 0 < number < 1:
        t.put("data.eval_fraction", number, key)
    elif number == 0:
        t.ignored(
            key,
            "no split asked; without test_datasets tunewright holds out data.eval_fraction (0.1)",
        )
    else:
        t.unsupported(key, "a count of examples: set data.eval_fraction to a share instead")


def _epochs(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    common.epochs(t, key, value)


HANDLERS: dict[str, Handler] = {
    "base_model": model_name,
    "trust_remote_code": _simple("model.trust_remote_code", bool),
    "chat_template": _chat_template,
    "chat_template_jinja": lambda t, k, v, r: t.ignored(k, "read with chat_template: jinja"),
    "load_in_4bit": _quantized,
    "load_in_8bit": _quantized,
    "peft_use_dora": lambda t, k, v, r: t.ignored(k, "only LoRA runs take DoRA here"),
    "peft_use_rslora": _simple("train.lora.use_rslora", bool),
    "lora_r": _simple("train.lora.r", int),
    "lora_alpha": _simple("train.lora.alpha", int),
    "lora_dropout": _simple("train.lora.dropout", float),
    "lora_target_linear": _lora_target,
    "lora_target_modules": _lora_target,
    "rl_beta": _simple("train.preference.beta", float),
    "dpo_beta": _simple("train.preference.beta", float),
    "orpo_alpha": _simple("train.preference.beta", float, "ours names ORPO's weight beta"),
    "simpo_gamma": _simple("train.preference.simpo_gamma", float),
    "datasets": _datasets,
    "test_datasets": _datasets,
    "val_set_size": _val_set_size,
    "sequence_len": _simple("data.max_seq_len", int),
    "default_system_message": _simple("data.system_prompt", str),
    "train_on_inputs": _simple("train.train_on_prompt", bool),
    "output_dir": _common(common.output_dir),
    "micro_batch_size": _simple("train.batch_size", int),
    "gradient_accumulation_steps": _simple("train.grad_accum", int),
    "learning_rate": _simple("train.learning_rate", float),
    "num_epochs": _epochs,
    "max_steps": _simple("train.max_steps", int),
    "lr_scheduler": _common(common.scheduler),
    "optimizer": _common(common.optimizer),
    "warmup_ratio": _simple("train.warmup_ratio", float),
    "warmup_steps": _common(common.warmup_steps),
    "weight_decay": _simple("train.weight_decay", float),
    "bf16": _precision,
    "fp16": _precision,
    "gradient_checkpointing": _simple("train.gradient_checkpointing", bool),
    "flash_attention": _attention,
    "sdp_attention": _attention,
    "xformers_attention": _attention,
    "eval_steps": _simple("train.eval_every", int),
    "save_steps": _simple("train.save_every", int),
    "evals_per_epoch": _eval_per_epoch,
    "saves_per_epoch": _eval_per_epoch,
    "save_total_limit": _simple("train.keep_checkpoints", int),
    "early_stopping_patience": _simple("train.early_stopping_patience", int),
    "seed": _simple("seed", int),
    "deepspeed": _common(common.deepspeed),
    "fsdp": _common(common.fsdp),
    "fsdp_config": _fsdp_config,
    "plugins": _plugins,
    "liger_fused_linear_cross_entropy": _liger_option,
    "liger_rms_norm": _liger_option,
    "liger_glu_activation": _liger_option,
    "liger_rope": _liger_option,
    "hub_model_id": _simple("export.push_to_hub", str),
    "eval_max_new_tokens": _simple("eval.max_new_tokens", int),
    "trust_remote_code_tokenizer": lambda t, k, v, r: t.ignored(k, "model.trust_remote_code"),
}
IGNORED = {
    "base_model_config": "the model folder's own config is used",
    "model_type": "read from the model's config",
    "tokenizer_type": "read from the model folder",
    "strict": "unknown keys are always errors in tunewright configs",
    "dataset_prepared_path": "prepared data lives in <run>/data",
    "sample_packing": "SFT batches are packed (padding-free) where the model allows it",
    "eval_sample_packing": "batching is tunewright's own",
    "pad_to_sequence_len": "batches are padding-free",
    "tf32": "not set by tunewright: PyTorch's default matmul precision applies",
    "logging_steps": "every step is logged (train/metrics.jsonl)",
    "local_rank": "set by the launcher",
    "debug": "no effect",
    "group_by_length": "no effect",
    "save_safetensors": "weights are always saved as safetensors",
    "dataset_processes": "no effect: data preparation runs in one process",
    "is_llama_derived_model": "read from the model's config",
    "is_mistral_derived_model": "read from the model's config",
    "gradient_checkpointing_kwargs": "checkpointing is always non-reentrant",
    "eval_table_size": "`tunewright eval` writes every generated answer",
    "shuffle_merged_datasets": "training shuffles every epoch",
}
UNSUPPORTED = {
    "lora_model_dir": "start from a merged model: `tunewright export` merges an adapter, then "
    "set model.name to that folder",
    "lora_modules_to_save": "adapters go on train.lora.target_modules only",
    "lora_fan_in_fan_out": "not offered (PEFT detects Conv1D layers itself)",
    "tokens": "adding tokens is not offered",
    "special_tokens": "setting special tokens is not offered; the tokenizer's own are used "
    "(padding with its end-of-sequence token when it has no pad token)",
    "resume_from_checkpoint": "use `tunewright train --resume`",
    "auto_resume_from_checkpoints": "use `tunewright train --resume`",
    "max_grad_norm": "gradients are clipped at 1.0 (Transformers' default)",
    "neftune_noise_alpha": "not offered",
    "torch_compile": "not offered",
    "unsloth_lora_mlp": "no Unsloth kernels (see the README's Unsloth table)",
    "unsloth_lora_qkv": "no Unsloth kernels (see the README's Unsloth table)",
    "unsloth_lora_o": "no Unsloth kernels (see the README's Unsloth table)",
    "unsloth_cross_entropy_loss": "no Unsloth kernels; train.liger fuses the loss",
    "lr_quadratic_warmup": "not offered",
    "cosine_min_lr_ratio": "cosine decays to zero",
    "loss_watchdog_threshold": "training stops on a non-finite loss anyway",
    "hf_use_auth_token": "HF_TOKEN from the environment is used",
}
