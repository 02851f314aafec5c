"""Settings both peers spell the same way (they pass them to Hugging Face's TrainingArguments),
translated once."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from tunewright.chat_templates import TEMPLATES
from tunewright.config.peers.translation import Translation

# Template names of LLaMA-Factory (`template`) and Axolotl (`chat_template`) -> our registry's.
TEMPLATE_ALIASES = {
    "qwen2": "qwen",
    "qwen2_5": "qwen",
    "qwen_25": "qwen",
    "phi3": "phi",
    "phi_3": "phi",
    "phi_35": "phi",
    "mistral_v1": "mistral",
    "llama3_2": "llama3",
    "gemma2": "gemma",
    "gemma3": "gemma",
}
SCHEDULERS = {
    "cosine": "cosine",
    "linear": "linear",
    "constant": "constant",
    "constant_with_warmup": "constant_with_warmup",
}
OPTIMIZERS = {
    "adamw_torch": "adamw",
    "adamw_hf": "adamw",
    "adamw": "adamw",
    "adamw_torch_fused": "adamw_fused",
    "adamw_8bit": "adamw_8bit",
    "adamw_bnb_8bit": "adamw_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "adafactor": "adafactor",
}
TRACKERS = ("tensorboard", "wandb", "mlflow")


def template(t: Translation, key: str, value: Any) -> None:
    name = TEMPLATE_ALIASES.get(str(value), str(value))
    if name in TEMPLATES:
        t.put(
            "model.chat_template",
            name,
            key,
            "used only when the model's tokenizer has no chat template; a tokenizer's own "
            "template is kept (theirs always formats with the named one)",
        )
    else:
        t.unsupported(
            key,
            f"no registry template '{value}' (have {', '.join(TEMPLATES)}); the tokenizer's own "
            "template is used, or set model.chat_template to a Jinja file",
        )


def output_dir(t: Translation, key: str, value: Any) -> None:
    """Their output folder is one path; ours is <runs_dir>/<name>/<stage>/."""
    path = PurePosixPath(str(value))
    t.put(
        "runs_dir",
        str(path.parent) if str(path.parent) != "." else "runs",
        key,
        f"runs_dir + name: outputs go to {path}/<stage>/ (data, train, eval, export), not "
        f"into {path} itself",
    )
    t.put("name", run_name(path.name), key, row=False)


def run_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).lstrip("._-")
    return cleaned or "imported"


def scheduler(t: Translation, key: str, value: Any) -> None:
    if str(value) in SCHEDULERS:
        t.put("train.lr_scheduler", SCHEDULERS[str(value)], key)
    else:
        t.unsupported(key, f"'{value}' is not offered; pick one of {', '.join(SCHEDULERS)}")


def optimizer(t: Translation, key: str, value: Any) -> None:
    if str(value) in OPTIMIZERS:
        t.put("train.optimizer", OPTIMIZERS[str(value)], key)
    else:
        t.unsupported(
            key,
            f"'{value}' is not offered; train.optimizer takes auto, adamw, "
            "adamw_fused, adamw_8bit, paged_adamw_8bit or adafactor",
        )


def report_to(t: Translation, key: str, value: Any) -> None:
    names = [value] if isinstance(value, str) else list(value or [])
    if any(n in ("none", None) for n in names):
        t.put("train.report_to", [], key)
        return
    kept = [n for n in names if n in TRACKERS]
    t.put("train.report_to", kept, key)
    dropped = [str(n) for n in names if n not in TRACKERS]
    if dropped:
        t.unsupported(key, f"{', '.join(dropped)} not offered (tensorboard, wandb, mlflow are)")


def epochs(t: Translation, key: str, value: Any) -> None:
    number = float(value)
    if number.is_integer() and number >= 1:
        t.put("train.epochs", int(number), key)
        return
    whole = max(1, round(number))
    t.put("train.epochs", whole, key, f"{value} epochs rounded to {whole}: epochs are whole")


def warmup_steps(t: Translation, key: str, value: Any) -> None:
    if int(value) == 0:
        t.put("train.warmup_ratio", 0.0, key)
    else:
        t.unsupported(key, "warm-up is a share of the steps: set train.warmup_ratio")


def deepspeed(t: Translation, key: str, value: Any) -> None:
    t.put("train.distributed", "deepspeed", key)
    t.put(
        "train.deepspeed.config",
        t.path(str(value)),
        key,
        "the path is relative to the config file, not the working directory; applies when "
        "training runs in several processes (`train --nproc N`)",
    )


def fsdp(t: Translation, key: str, value: Any, offload: bool = False) -> None:
    words = value.split() if isinstance(value, str) else [str(v) for v in value or []]
    shardings = ("full_shard", "shard_grad_op", "hybrid_shard", "no_shard")
    chosen = next((w for w in words if w in shardings), None)
    if not words or (chosen is None and "offload" not in words):
        t.unsupported(key, f"no sharding named in {value!r}; set train.fsdp.sharding")
        return
    t.put("train.distributed", "fsdp", key)
    t.put("train.fsdp.sharding", chosen or "full_shard", key)
    if offload or "offload" in words:
        t.put("train.fsdp.cpu_offload", True, key)
    others = [w for w in words if w not in (*shardings, "offload")]
    if others:
        t.ignored(key, f"{', '.join(others)}: tunewright wraps each decoder layer itself")
