"""A LoRA adapter as a GGUF adapter file, for runtimes that apply it at load time
(`llama-cli -m base.gguf --lora adapter.gguf`, Ollama's ADAPTER).

The layout is llama.cpp's (its convert_lora_to_gguf.py): `general.type` adapter,
`adapter.type` lora, `adapter.lora.alpha`, and per adapted weight `<gguf name>.lora_a` (A, rank x
in) and `.lora_b` (B, out x rank), float32. llama.cpp scales by alpha / rank, so a rank-stabilised
adapter (alpha / sqrt(rank)) is written with alpha x sqrt(rank). For a Llama's q and k, B's rows
take the same reorder as the full model's weights (`gguf_file.permute_qk`).

Without llama.cpp the file cannot be run here, so `check_adapter` checks it against the merge:
for every weight, alpha / rank x B @ A read back from the file must equal the merged model's
weight minus the base's, in llama.cpp's row order, and every changed weight must be in the file.
The full-model GGUF's own parity check covers the row order itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tunewright.exporting.gguf_file import GgufUnsupportedError, architecture, permute_qk
from tunewright.exporting.parity import ParityError

# A delta may differ from the merge by float32 rounding of B @ A: measured ~1e-8 on the tiny model.
DELTA_ATOL = 1e-5


def write_gguf_adapter(
    adapter_dir: Path, base_dir: Path, path: Path, *, name: str
) -> dict[str, Any]:
    """Write the PEFT LoRA adapter `adapter_dir` (trained on `base_dir`) as GGUF at `path`."""
    import gguf
    from safetensors.torch import load_file
    from transformers import AutoConfig

    settings = _lora_settings(adapter_dir)
    config = AutoConfig.from_pretrained(base_dir)
    arch = architecture(config)
    rank, alpha = settings["r"], float(settings["lora_alpha"])
    if settings.get("use_rslora"):
        alpha *= math.sqrt(rank)  # llama.cpp's alpha / rank must equal PEFT's alpha / sqrt(rank)
    writer = gguf.GGUFWriter(path, arch.gguf_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name)
    pairs = _pairs(load_file(str(adapter_dir / "adapter_model.safetensors")))
    names = gguf.get_tensor_name_map(
        getattr(gguf.MODEL_ARCH, arch.gguf_name.upper()), config.num_hidden_layers
    )
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    for hf_name, (a, b) in sorted(pairs.items()):
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GgufUnsupportedError(
                f"gguf-adapter: no llama.cpp name for the adapted weight {hf_name}",
                hint="Export the merged model instead (--format gguf).",
            )
        lora_b = b.float().numpy()
        if arch.permute_qk and hf_name.endswith("q_proj.weight"):
            lora_b = permute_qk(lora_b, heads, heads)
        elif arch.permute_qk and hf_name.endswith("k_proj.weight"):
            lora_b = permute_qk(lora_b, heads, kv_heads)
        writer.add_tensor(f"{gguf_name}.lora_a", a.float().numpy())
        writer.add_tensor(f"{gguf_name}.lora_b", lora_b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {
        "architecture": arch.gguf_name,
        "rank": rank,
        "alpha_written": alpha,
        "rslora": bool(settings.get("use_rslora")),
        "adapted_weights": len(pairs),
        "bytes": path.stat().st_size,
    }


def _lora_settings(adapter_dir: Path) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads((adapter_dir / "adapter_config.json").read_text())
    unsupported = [
        why
        for why, present in (
            (f"peft_type {settings.get('peft_type')}", settings.get("peft_type") != "LORA"),
            ("DoRA magnitudes", settings.get("use_dora")),
            (
                "per-module ranks or alphas",
                settings.get("rank_pattern") or settings.get("alpha_pattern"),
            ),
            ("fully trained modules (modules_to_save)", settings.get("modules_to_save")),
        )
        if present
    ]
    if unsupported:
        raise GgufUnsupportedError(
            f"gguf-adapter: llama.cpp's adapter format holds plain LoRA only; this adapter has "
            f"{', '.join(unsupported)}",
            hint="Export the merged model instead: --format gguf.",
        )
    return settings


def _pairs(tensors: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Base weight name (as in the model's state dict) -> (lora_A, lora_B)."""
    found: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}.weight"
            if key.endswith(marker):
                base = key.replace("base_model.model.", "", 1)[: -len(marker)] + ".weight"
                found.setdefault(base, {})[part] = tensor
    return {name: (p["lora_A"], p["lora_B"]) for name, p in found.items()}


def check_adapter(
    path: Path, base_dir: Path, merged_dir: Path, tolerance: float = DELTA_ATOL
) -> dict[str, Any]:
    """The adapter file's deltas against merged - base, per weight; raises ParityError."""
    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM

    reader = GGUFReader(path)
    alpha = float(reader.fields["adapter.lora.alpha"].contents())
    stored = {t.name: torch.from_numpy(t.data.copy()) for t in reader.tensors}
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    arch = architecture(base.config)
    import gguf

    names = gguf.get_tensor_name_map(
        getattr(gguf.MODEL_ARCH, arch.gguf_name.upper()), base.config.num_hidden_layers
    )
    heads, kv_heads = base.config.num_attention_heads, base.config.num_key_value_heads
    worst, missing, checked = 0.0, [], 0
    merged_weights = dict(merged.named_parameters())
    for hf_name, weight in base.named_parameters():
        delta = (merged_weights[hf_name] - weight).detach().numpy()
        if arch.permute_qk and hf_name.endswith("q_proj.weight"):
            delta = permute_qk(delta, heads, heads)
        elif arch.permute_qk and hf_name.endswith("k_proj.weight"):
            delta = permute_qk(delta, heads, kv_heads)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        a, b = stored.get(f"{gguf_name}.lora_a"), stored.get(f"{gguf_name}.lora_b")
        if a is None or b is None:
            if float(abs(delta).max()) > tolerance:
                missing.append(hf_name)
            continue
        applied = (alpha / a.shape[0]) * (b @ a)
        worst = max(worst, float((applied - torch.from_numpy(delta)).abs().max()))
        checked += 1
    record = {"weights_checked": checked, "max_delta_diff": worst, "tolerance": tolerance}
    record["passed"] = not missing and worst <= tolerance and checked > 0
    if not record["passed"]:
        problem = f"missing changed weights {missing[:3]}" if missing else ""
        raise ParityError(
            f"gguf-adapter check failed: max delta difference {worst:.2e} (tolerance "
            f"{tolerance:.0e}) over {checked} weights{'; ' + problem if problem else ''}",
            hint="The adapter file does not reproduce the merge. Export --format gguf instead.",
        )
    return record
