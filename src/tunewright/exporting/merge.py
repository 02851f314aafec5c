"""Merging an adapter into its base weights, checked for parity.

`merge_and_check` reads top to bottom: for QLoRA first probe the model as trained (NF4 base +
adapter), then load the base in float32 with the adapter and probe it, merge, save, reload the
saved folder with plain transformers and probe that: the check runs on exactly what users load.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.errors import TunewrightError
from tunewright.exporting.parity import (
    Check,
    ProbeOutput,
    Probes,
    exact_check,
    max_logit_diff,
    parity_report,
    quantised_check,
    require_parity,
    run_probes,
)

MERGE_DTYPE = "float32"  # merging in float32 is exact; `export` casts afterwards


class MergeUnsupportedError(TunewrightError):
    """The adapter adds something other than weight updates (virtual tokens), or PEFT refuses."""


def check_mergeable(config: Config) -> None:
    """Fail before any loading when the method's adapters cannot be merged. (Anything else
    PEFT refuses is caught at the merge itself, by `merge_weights`.)"""
    from tunewright.methods import PROMPT_METHODS

    method = config.train.method
    if method in PROMPT_METHODS:
        raise MergeUnsupportedError(
            f"train.method {method}: {method}-tuning adapters cannot be merged into the base "
            "weights (they add learned virtual tokens to every prompt, not weight updates); "
            "they are served as adapters instead",
            hint="Serve it with `tunewright serve CONFIG` (base model + <run>/train/adapter). "
            "Merging and `tunewright export` need lora, qlora, dora or ia3, or full fine-tuning.",
        )


def merge_and_check(
    config: Config, adapter_dir: Path, tokenizer: Any, probes: Probes, out: Path
) -> dict[str, Any]:
    """Merge `adapter_dir` into the base, save the result into `out` and check its parity.

    Returns the manifest record; raises `ParityError` (before `out` is published) on mismatch."""
    from tunewright.models import resolve_model

    base_dir = resolve_model(config.model.name)
    as_trained = probe_as_trained(config, base_dir, adapter_dir, tokenizer, probes)
    model = load_adapter_model(load_merge_base(config, base_dir), adapter_dir)
    expected = run_probes(model, tokenizer, probes)
    base_shift = 0.0
    if as_trained is not None:  # how far quantisation alone moves the base: QLoRA's yardstick
        with model.disable_adapter():
            base = run_probes(model, tokenizer, probes, replies=False)
        base_shift = max_logit_diff(base, as_trained.adapter_off)
    save_model(merge_weights(model, config.train.method), tokenizer, out)
    del model
    gc.collect()  # the in-memory model is not needed once saved: only one copy at a time
    merged = run_probes(reload(out), tokenizer, probes)
    checks = [exact_check(expected, merged)]
    if as_trained is not None:
        floor = checks[0].tolerance
        checks.append(quantised_check(as_trained.adapter_on, merged, base_shift, floor))
    require_parity(checks, config.train.method)
    return {
        "method": config.train.method,
        "adapter": str(adapter_dir),
        "base_model": config.model.name,
        "base_folder": str(base_dir),
        "merged_dtype": MERGE_DTYPE,
        "base_loaded_as": MERGE_DTYPE
        + (" (the original weights, not the NF4 ones it trained against)" if as_trained else ""),
        "parity": parity_report(probes, checks),
    }


@dataclass(frozen=True)
class AsTrained:
    """Probe outputs of the model as QLoRA trained it: the adapter on the NF4 base."""

    adapter_on: ProbeOutput
    adapter_off: ProbeOutput


def probe_as_trained(
    config: Config, base_dir: Path, adapter_dir: Path, tokenizer: Any, probes: Probes
) -> AsTrained | None:
    """QLoRA only; None for methods trained on a full-precision base, where the exact check
    says it all."""
    if config.train.method != "qlora":
        return None
    from tunewright.training.levers import Lever, resolve_levers
    from tunewright.training.model_setup import load_base_for_training

    # Probes only run forward: the base as trained, without checkpointing.
    levers = resolve_levers(config, Lever(False, "merge: forward only"))
    model = load_adapter_model(load_base_for_training(config, base_dir, levers), adapter_dir)
    adapter_on = run_probes(model, tokenizer, probes)
    with model.disable_adapter():
        adapter_off = run_probes(model, tokenizer, probes, replies=False)
    del model
    gc.collect()
    return AsTrained(adapter_on, adapter_off)


def load_merge_base(config: Config, base_dir: Path) -> Any:
    """The base weights to merge into: the original weights in float32, for every method.

    For QLoRA this is deliberately not the NF4 model it trained on: merging into NF4 weights
    re-quantises them and loses most of the adapter (measured on the embedded model: logits moved
    by up to 0.25 against about 1e-7 for a float32 merge)."""
    from tunewright.models import load_causal_lm

    return load_causal_lm(base_dir, MERGE_DTYPE)


def load_adapter_model(base: Any, adapter_dir: Path) -> Any:
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def merge_weights(model: Any, method: str) -> Any:
    """PEFT's merge; anything it refuses becomes a user error naming the alternative."""
    try:
        return model.merge_and_unload(safe_merge=True)
    except (AttributeError, NotImplementedError, TypeError, ValueError) as exc:
        raise MergeUnsupportedError(
            f"PEFT cannot merge this {method} adapter ({type(exc).__name__}: {exc}); it is "
            "served as an adapter instead",
            hint="Serve it with `tunewright serve CONFIG` (base model + <run>/train/adapter).",
        ) from exc


def save_model(model: Any, tokenizer: Any, folder: Path) -> None:
    """Weights as safetensors, the tokenizer with the training chat template, and a generation
    config that stops at the template's end-of-turn token, as eval and serve do."""
    from tunewright.generate import stop_token_ids

    model.generation_config.eos_token_id = stop_token_ids(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def reload(folder: Path) -> Any:
    """The folder as any user would load it: plain transformers, its saved dtype."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


def parity_checks(report: dict[str, Any]) -> list[Check]:
    """The checks of a manifest record, for printing."""
    return [
        Check(**{k: v for k, v in c.items() if k != "passed"}) for c in report["parity"]["checks"]
    ]
