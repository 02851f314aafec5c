"""Padding-free batches and the selective loss give the same loss as padded HF batches."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunewright.training.features import PackedCollator, PaddedCollator, causal_features
from tunewright.training.trainer import SelectiveLossTrainer


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


def test_packed_selective_loss_equals_padded_loss(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    features = causal_features(tokenizer, records(4), max_seq_len=256, train_on_prompt=False)

    padded = PaddedCollator(tokenizer.pad_token_id)(features)
    with torch.no_grad():
        logits = model(
            input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]
        ).logits
    targets = padded["labels"][:, 1:]
    mask = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][mask], targets[mask])

    packed = PackedCollator()(features)
    assert packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].shape[1] == sum(len(f["input_ids"]) for f in features)
    trainer = SelectiveLossTrainer.__new__(SelectiveLossTrainer)  # only compute_loss is used
    trainer.tokens_seen = 0
    with torch.no_grad():
        got = SelectiveLossTrainer.compute_loss(trainer, model, dict(packed))
    assert torch.allclose(got, expected, atol=1e-5), (got, expected)


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
