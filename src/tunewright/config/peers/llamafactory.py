"""LLaMA-Factory's training YAML (`llamafactory-cli train x.yaml`) -> our config. Every key
either has a handler here or is reported as unknown; `dataset` and `eval_dataset` are read
through `dataset_info.json` in `dataset_dir` (see `dataset_info`)."""

from __future__ import annotations

from typing import Any

from tunewright.config.peers import common
from tunewright.config.peers.dataset_info import read_dataset_info, source_entry
from tunewright.config.peers.translation import (
    Handler,
    Translation,
    model_name,
    translate_keys,
)
from tunewright.config.peers.translation import common as _common
from tunewright.config.peers.translation import simple as _simple

STAGES = {"sft": "sft", "dpo": "dpo", "kto": "kto", "pt": "sft"}
PREF_LOSSES = {"sigmoid": ("dpo", "sigmoid"), "ipo": ("dpo", "ipo"), "hinge": ("dpo", "hinge")}
ATTENTION = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager", "auto": "auto"}


# What LLaMA-Factory (and the Transformers TrainingArguments it passes on) uses for a key that is
# not set, where our default differs: an unset key is translated to their value.
DEFAULTS: dict[str, Any] = {
    "learning_rate": 5.0e-5,
    "num_train_epochs": 3.0,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "lr_scheduler_type": "linear",
    "weight_decay": 0.0,
    "cutoff_len": 2048,
}
LORA_DEFAULTS: dict[str, Any] = {"lora_rank": 8, "lora_dropout": 0.0}


def translate(raw: dict[str, Any], t: Translation) -> None:
    consumed = _method(raw, t)
    _defaults(raw, t)
    translate_keys(raw, t, consumed, HANDLERS, IGNORED, UNSUPPORTED)
    _datasets(raw, t)


def _method(raw: dict[str, Any], t: Translation) -> set[str]:
    """stage, finetuning_type, quantization_bit, use_dora and an orpo/simpo pref_loss together
    decide method and objective, so they are read before the rest; returns the keys read."""
    stage = str(raw.get("stage", "sft"))
    consumed = {"stage"}
    if stage == "dpo" and raw.get("pref_loss") in ("orpo", "simpo"):
        t.put("train.objective", raw["pref_loss"], "stage, pref_loss")
        consumed.add("pref_loss")
    elif stage in STAGES:
        note = "pre-training: the data is read as plain text, loss on every token"
        t.put("train.objective", STAGES[stage], "stage", note if stage == "pt" else "")
    else:
        t.unsupported(
            "stage",
            f"stage {stage} (reward model / PPO) is not offered; "
            "train.objective: grpo trains against reward functions instead",
        )
    kind = str(raw.get("finetuning_type", "lora"))
    if kind == "full":
        t.put("train.method", "full", "finetuning_type")
        return consumed | {"finetuning_type"}
    if kind != "lora":
        t.unsupported("finetuning_type", f"{kind} is not offered; use lora or full")
        return consumed | {"finetuning_type"}
    read = ["finetuning_type"] if "finetuning_type" in raw else []
    method = "lora"
    if raw.get("use_dora"):
        method, read = "dora", [*read, "use_dora"]
    if raw.get("quantization_bit") is not None and int(raw["quantization_bit"]) == 4:
        method, read = "qlora", [*read, "quantization_bit"]
    t.put("train.method", method, ", ".join(read) or "finetuning_type (unset: lora)")
    return consumed | set(read)


def _defaults(raw: dict[str, Any], t: Translation) -> None:
    """Their default for each unset key whose default differs from ours."""
    defaults = dict(DEFAULTS)
    if t.get("train.method") in ("lora", "qlora", "dora"):
        defaults.update(LORA_DEFAULTS)
        rank = raw.get("lora_rank", LORA_DEFAULTS["lora_rank"])
        defaults["lora_alpha"] = 2 * int(rank)  # theirs: rank x 2 when unset
    if "warmup_steps" not in raw:
        defaults["warmup_ratio"] = 0.0
    for key, value in defaults.items():
        if key not in raw:
            HANDLERS[key](t, f"{key} (unset)", value, raw)
            t.rows[
                -1
            ].note = f"unset: LLaMA-Factory's default {value}, written out since ours differs"


def _datasets(raw: dict[str, Any], t: Translation) -> None:
    names = {key: _names(raw.get(key)) for key in ("dataset", "eval_dataset")}
    if not any(names.values()):
        return
    dataset_dir = str(raw.get("dataset_dir", "data"))
    folder = t.find(dataset_dir) or t.base / dataset_dir
    info = read_dataset_info(folder)
    pretraining = raw.get("stage") == "pt"
    for key, side in (("dataset", "data.train"), ("eval_dataset", "data.eval")):
        entries = []
        for name in names[key]:
            if name not in info:
                t.unsupported(f"{key}: {name}", f"no entry '{name}' in {folder}/dataset_info.json")
                continue
            entry = source_entry(t, name, info[name], folder, pretraining)
            if entry is not None:
                entries.append(entry)
        if entries:
            t.put(side, entries, key)


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in items if str(item).strip()]


def _lora_target(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    names = _names(value)
    if names == ["all"]:
        t.put("train.lora.target_modules", "all-linear", key)
    else:
        t.put("train.lora.target_modules", names, key)


def _quantization(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    kind = raw.get("finetuning_type", "lora")
    t.unsupported(key, f"{value}-bit loading of a {kind} run is not offered; QLoRA is 4-bit LoRA")


def _pref_loss(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if value in ("orpo", "simpo"):
        t.ignored(key, f"read with stage: train.objective {value}")
    elif value in PREF_LOSSES:
        t.put("train.preference.loss_type", PREF_LOSSES[value][1], key)
    else:
        t.unsupported(key, f"{value} is not offered; loss_type takes sigmoid, ipo, hinge, robust")


def _precision(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if value:
        note = "pure_bf16 keeps bf16 weights; ours keeps float32 weights, bf16 compute"
        t.put(
            "train.precision",
            "bf16" if "bf16" in key else "fp16",
            key,
            note if key == "pure_bf16" else "",
        )
    else:
        t.ignored(key, "false is the default")


def _checkpointing(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    t.put("train.gradient_checkpointing", not value, key)


def _eval_steps(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    t.put("train.eval_every", int(value), key)


def _save_steps(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    t.put("train.save_every", int(value), key)


def _strategy(target: str) -> Handler:
    def handle(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
        if value == "epoch":
            t.put(target, "epoch", key)
        elif value == "steps":
            t.ignored(key, f"the {key.split('_')[0]}_steps value sets {target}")
        else:
            t.unsupported(key, f"'{value}': {target} takes epoch or a step count")

    return handle


def _val_size(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    number = float(value)
    if 0 < number < 1:
        t.put("data.eval_fraction", number, key)
    elif number == 0:
        t.ignored(key, "no split asked; tunewright always holds out data.eval_fraction (0.1)")
    else:
        t.unsupported(key, "a count of examples: set data.eval_fraction to a share instead")


def _attention(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if str(value) in ATTENTION:
        t.put("model.attn_implementation", ATTENTION[str(value)], key)
    else:
        t.unsupported(
            key,
            f"'{value}': model.attn_implementation takes auto, sdpa, flash_attention_2 or eager",
        )


def _lora_alpha(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    t.put("train.lora.alpha", int(value), key)


def _handled_by_method(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    t.ignored(key, "false: plain LoRA")


def _handled_by_datasets(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    if key == "dataset_dir":
        t.ignored(key, "dataset_info.json is read from it; the files become data.train entries")


def _liger(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    t.put("train.liger", bool(value), key, "CUDA only; on a CPU tunewright keeps its own head")


HANDLERS: dict[str, Handler] = {
    "model_name_or_path": model_name,
    "trust_remote_code": _simple("model.trust_remote_code", bool),
    "template": _common(common.template),
    "flash_attn": _attention,
    "use_dora": _handled_by_method,
    "quantization_bit": _quantization,
    "lora_rank": _simple("train.lora.r", int),
    "lora_alpha": _lora_alpha,
    "lora_dropout": _simple("train.lora.dropout", float),
    "lora_target": _lora_target,
    "use_rslora": _simple("train.lora.use_rslora", bool),
    "pref_beta": _simple("train.preference.beta", float),
    "pref_loss": _pref_loss,
    "simpo_gamma": _simple("train.preference.simpo_gamma", float),
    "dpo_label_smoothing": _simple("train.preference.label_smoothing", float),
    "dataset": _handled_by_datasets,
    "eval_dataset": _handled_by_datasets,
    "dataset_dir": _handled_by_datasets,
    "cutoff_len": _simple("data.max_seq_len", int),
    "val_size": _val_size,
    "default_system": _simple("data.system_prompt", str),
    "train_on_prompt": _simple("train.train_on_prompt", bool),
    "output_dir": _common(common.output_dir),
    "run_name": _simple("name", common.run_name),
    "report_to": _common(common.report_to),
    "per_device_train_batch_size": _simple("train.batch_size", int),
    "gradient_accumulation_steps": _simple("train.grad_accum", int),
    "learning_rate": _simple("train.learning_rate", float),
    "num_train_epochs": _common(common.epochs),
    "max_steps": _simple("train.max_steps", int),
    "lr_scheduler_type": _common(common.scheduler),
    "warmup_ratio": _simple("train.warmup_ratio", float),
    "warmup_steps": _common(common.warmup_steps),
    "weight_decay": _simple("train.weight_decay", float),
    "optim": _common(common.optimizer),
    "bf16": _precision,
    "fp16": _precision,
    "pure_bf16": _precision,
    "disable_gradient_checkpointing": _checkpointing,
    "save_steps": _save_steps,
    "save_strategy": _strategy("train.save_every"),
    "eval_steps": _eval_steps,
    "eval_strategy": _strategy("train.eval_every"),
    "save_total_limit": _simple("train.keep_checkpoints", int),
    "seed": _simple("seed", int),
    "deepspeed": _common(common.deepspeed),
    "fsdp": _common(common.fsdp),
    "enable_liger_kernel": _liger,
}
IGNORED = {
    "do_train": "training is its own command (`tunewright train` / `run`)",
    "do_eval": "`tunewright eval` compares the tuned model with the base",
    "overwrite_cache": "prepared data is redone whenever the config or a data file changes",
    "overwrite_output_dir": "stages rerun when their inputs change (`run --force` forces one)",
    "preprocessing_num_workers": "no effect: data preparation runs in one process",
    "dataloader_num_workers": "no effect",
    "plot_loss": "the loss plot is always written (train/loss.png)",
    "logging_steps": "every step is logged (train/metrics.jsonl)",
    "ddp_timeout": "no effect",
    "per_device_eval_batch_size": "eval loss uses train.batch_size; eval.batch_size is generation",
    "save_only_model": "checkpoints hold what resuming needs",
    "include_num_input_tokens_seen": "tokens per second are always reported",
    "packing": "SFT batches are packed (padding-free) where the model allows it",
    "double_quantization": "QLoRA always uses nested (double) quantisation",
    "quantization_method": "QLoRA uses bitsandbytes NF4",
    "cache_dir": "models come from the Hugging Face cache or model.name's folder",
}
UNSUPPORTED = {
    "adapter_name_or_path": "start from a merged model: `tunewright export` merges an adapter, "
    "then set model.name to that folder",
    "use_unsloth": "no Unsloth engine: training runs on HF Transformers, PEFT and TRL (see the "
    "README's Unsloth table)",
    "rope_scaling": "use a model whose config already sets it",
    "max_samples": "trim the data file, or set train.max_steps",
    "mix_strategy": "data.train files are concatenated",
    "streaming": "data files are read whole",
    "neat_packing": "packing is automatic",
    "pref_ftx": "no SFT term in the preference loss; train SFT first",
    "mask_history": "every assistant turn is trained; give earlier turns weight 0 in the data",
    "resume_from_checkpoint": "use `tunewright train --resume`",
    "additional_target": "adapters go on train.lora.target_modules only",
    "loraplus_lr_ratio": "not offered",
    "pissa_init": "not offered",
    "neftune_noise_alpha": "not offered",
    "max_grad_norm": "gradients are clipped at 1.0",
    "predict_with_generate": "`tunewright eval` generates answers",
    "do_predict": "`tunewright eval` generates answers",
    "export_dir": "`tunewright export` writes <run>/export",
    "kto_chosen_weight": "not offered",
    "kto_rejected_weight": "not offered",
    "freeze_trainable_layers": "finetuning_type freeze is not offered",
    "infer_backend": "`tunewright serve` serves the run",
}
