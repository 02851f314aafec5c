"""Padding-free batches and the selective loss give the same loss as padded HF batches, with
every attention implementation available here: no example attends across its boundary."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunewright.training.attention import PACKED_SDPA, register_packed_sdpa
from tunewright.training.features import PackedCollator, PaddedCollator, causal_features
from tunewright.training.trainer import SelectiveLossTrainer

FLASH = torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None
# model.attn_implementation's choices, plus the packed SDPA that padding-free training swaps in
IMPLEMENTATIONS = [
    "sdpa",
    "eager",
    PACKED_SDPA,
    pytest.param(
        "flash_attention_2",
        marks=pytest.mark.skipif(not FLASH, reason="needs CUDA and the flash_attn package"),
    ),
]


def records(n: int) -> list[dict]:
    return [
        {
            "task": "instruction",
            "messages": [
                {"role": "user", "content": f"Question {i}: {'what ' * (i + 1)}?"},
                {"role": "assistant", "content": f"Answer {i} " + "yes " * (3 * i + 2)},
            ],
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_packed_selective_loss_equals_padded_loss(tiny_model_dir, implementation):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # The reference: plain HF on padded batches with an attention mask.
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    features = causal_features(tokenizer, records(4), max_seq_len=256, train_on_prompt=False)

    padded = PaddedCollator(tokenizer.pad_token_id)(features)
    with torch.no_grad():
        logits = reference(
            input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]
        ).logits
    targets = padded["labels"][:, 1:]
    mask = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][mask], targets[mask])

    packed = PackedCollator()(features)
    assert packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].shape[1] == sum(len(f["input_ids"]) for f in features)
    if implementation == PACKED_SDPA:
        register_packed_sdpa()
    flash = implementation == "flash_attention_2"  # CUDA and 16-bit only
    device, dtype, atol = ("cuda", torch.bfloat16, 2e-2) if flash else ("cpu", torch.float32, 1e-5)
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation=implementation, dtype=dtype
    )
    model = model.to(device).eval()
    assert model.config._attn_implementation == implementation
    trainer = SelectiveLossTrainer.__new__(SelectiveLossTrainer)  # only compute_loss is used
    with torch.no_grad():
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in packed.items()}
        got = SelectiveLossTrainer.compute_loss(trainer, model, batch).float().cpu()
    assert torch.allclose(got, expected, atol=atol), (implementation, got, expected)


def test_packed_collator_masks_example_boundaries():
    batch = PackedCollator()(
        [
            {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
            {"input_ids": [4, 5], "labels": [4, 5]},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    # token 4 must not be learned from the end of the previous example
    assert batch["labels"].tolist() == [[-100, 2, 3, -100, 5]]
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5] and batch["max_length_q"] == 3
