"""Training speed and memory of tunewright's training step on a CUDA GPU, one setting at a time.

    python bench/gpu_check.py [--seconds 20] [--tiny --device cpu]

A random-initialised Llama-architecture model of ~1.1B parameters (TinyLlama's shape: hidden
2048, 22 layers, 32 query / 4 key-value heads, 32k vocabulary; config only, since speed does not
depend on the weights), base weights in bf16, LoRA r16 / alpha 16 on all linear layers in fp32
under bf16 autocast, fused AdamW at 2e-4: what `tunewright train` runs on a GPU with bf16. Each
step is one padding-free row of 8 examples of 128-1024 tokens with the loss on their second
half, through tunewright's own collator, packed attention and selective loss
(`SelectiveLossTrainer.compute_loss`). Settings:

    sdpa                    packed batches, per-example SDPA (tunewright's default on CUDA
                            without flash-attn)
    sdpa + checkpointing    the same with `train.gradient_checkpointing: true`
    flash_attention_2       flash-attn's variable-length kernel, when the package is installed
    padded sdpa             right-padded batches with a mask (what padding-free saves)

Each setting warms up for 2 steps, then runs for `--seconds`; it prints tokens/s (non-padding
tokens) and the peak GPU memory. Needs only torch, transformers, peft and accelerate besides
tunewright; about 3 minutes on one recent GPU. `--tiny --device cpu` runs a small model on the
CPU, to check the script itself anywhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from typing import Any

import torch

EXAMPLES_PER_STEP = 8


def build_model(tiny: bool, device: str, attention: str, checkpointing: bool) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = (
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 512}
        if tiny
        else {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22}
    )
    config = LlamaConfig(
        num_attention_heads=32 if not tiny else 4,
        num_key_value_heads=4 if not tiny else 2,
        max_position_embeddings=2048,
        **({"vocab_size": 32000} | shape),
    )
    config._attn_implementation = attention
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(model, lora)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    return model.train()


def make_features(vocab: int, tiny: bool, seed: int) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    features = []
    for _ in range(EXAMPLES_PER_STEP * 64):
        length = rng.randint(16, 96) if tiny else rng.randint(128, 1024)
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        half = length // 2
        features.append({"input_ids": ids, "labels": [-100] * half + ids[half:]})
    return features


def run_setting(name: str, args: argparse.Namespace) -> tuple[float, float]:
    from tunewright.training.attention import register_packed_sdpa
    from tunewright.training.features import PackedCollator, PaddedCollator
    from tunewright.training.trainer import EngineTrainer, SelectiveLossTrainer

    padded = name == "padded sdpa"
    attention = {"flash_attention_2": "flash_attention_2", "padded sdpa": "sdpa"}.get(
        name, register_packed_sdpa()
    )
    model = build_model(args.tiny, args.device, attention, "checkpointing" in name)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=2e-4, fused=True
    )
    features = make_features(model.config.vocab_size, args.tiny, seed=0)
    collate = PaddedCollator(pad_token_id=0) if padded else PackedCollator()
    trainer_class = EngineTrainer if padded else SelectiveLossTrainer
    trainer = trainer_class.__new__(trainer_class)  # only compute_loss is used

    def step(index: int) -> int:
        batch = collate(features[index * EXAMPLES_PER_STEP : (index + 1) * EXAMPLES_PER_STEP])
        tokens = int((batch["attention_mask"] if padded else batch["input_ids"]).ne(0).sum())
        batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(args.device, dtype=torch.bfloat16):
            if padded:
                loss = model(**batch, use_cache=False).loss
            else:
                loss = trainer_class.compute_loss(trainer, model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    step(0)
    step(1)
    sync()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tokens, index, start = 0, 2, time.perf_counter()
    while time.perf_counter() - start < args.seconds and index < 64:
        tokens += step(index)
        index += 1
        sync()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")
    return tokens / seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per setting")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a small model (to test the script)")
    args = parser.parse_args()
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        print(f"device: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    settings = ["sdpa", "sdpa + checkpointing", "padded sdpa"]
    if args.device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        settings.insert(2, "flash_attention_2")
    else:
        print("flash_attention_2: skipped (needs CUDA and the flash_attn package)")
    print("| setting | tokens/s | peak GPU memory (GiB) |")
    print("|---|---|---|")
    for setting in settings:
        speed, peak = run_setting(setting, args)
        if args.device == "cuda":
            torch.cuda.empty_cache()  # the setting's model is gone with run_setting's frame
        print(f"| {setting} | {speed:.0f} | {peak:.1f} |", flush=True)


if __name__ == "__main__":
    main()
