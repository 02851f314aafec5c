"""Tiny random-initialised models of each architecture the GGUF export writes.

A random tiny model attends almost uniformly (its q and k are small), so a wrong q/k layout
barely moves its logits; `sharpen` scales q and k up so attention matters, and a layout fault
shows as clearly as in a trained model (tiny Llama: logits move by 0.5 against 4e-4).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

SHARPEN = 8.0  # q and k x 8: attention logits x 64


def sharpen(model: torch.nn.Module, factor: float = SHARPEN) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "q_proj" in name or "k_proj" in name:
                param.mul_(factor)


def sharpened_copy(tiny_model_dir: Path, folder: Path) -> Path:
    """The conftest tiny Llama with sharpened attention, saved into `folder`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    sharpen(model)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model_dir / name).is_file():
            shutil.copy(tiny_model_dir / name, folder / name)
    return folder


def build_tiny(architecture: str, tiny_model_dir: Path, folder: Path) -> Path:
    """A 2-layer model of `architecture` (Qwen2ForCausalLM, Qwen3ForCausalLM,
    MistralForCausalLM) with the tiny Llama's tokenizer, sharpened, saved into `folder`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    llama = AutoConfig.from_pretrained(tiny_model_dir)
    kinds = {
        "Qwen2ForCausalLM": "qwen2",
        "Qwen3ForCausalLM": "qwen3",
        "MistralForCausalLM": "mistral",
    }
    config = AutoConfig.for_model(
        kinds[architecture],
        vocab_size=llama.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        # transformers' GGUF reader takes Qwen3's head_dim from its default (128, as in every
        # real Qwen3), not from the file; other architectures use hidden / heads.
        head_dim=128 if architecture == "Qwen3ForCausalLM" else 16,
        max_position_embeddings=512,
        tie_word_embeddings=architecture != "MistralForCausalLM",  # both layouts written
        bos_token_id=llama.bos_token_id,
        eos_token_id=llama.eos_token_id,
        pad_token_id=llama.pad_token_id,
    )
    config.architectures = [architecture]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    sharpen(model)
    with torch.no_grad():  # Qwen2 has q/k/v biases: make them non-zero, so they are checked
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.5)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model_dir / name).is_file():
            shutil.copy(tiny_model_dir / name, folder / name)
    return folder
