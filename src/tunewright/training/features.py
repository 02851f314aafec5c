"""Prepared records -> token features and the collators that batch them.

Causal LMs: each record goes through `chat.render_example`, the same code `data render` shows,
so the labels are exactly what the user inspected. Batches are padding-free by default: the
examples of a batch are laid end to end in one row with per-sequence position ids, so no compute
is spent on padding. Prompt-learning methods (prefix, prompt) prepend virtual tokens to every
sequence, which needs ordinary padded batches.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tunewright.chat import IGNORE_INDEX, render_example
from tunewright.data.records import Record


def causal_features(
    tokenizer: Any, records: list[Record], max_seq_len: int, train_on_prompt: bool
) -> list[dict[str, list[int]]]:
    features = []
    for record in records:
        messages = record["messages"]
        if record["task"] == "preference":  # SFT on the preferred answer
            messages = [*messages, {"role": "assistant", "content": record.get("chosen") or ""}]
        rendered = render_example(
            tokenizer,
            messages,
            tools=record.get("tools"),
            train_on_prompt=train_on_prompt,
            max_seq_len=max_seq_len,
        )
        features.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return features


def classification_features(
    tokenizer: Any, records: list[Record], labels: list[str], max_seq_len: int
) -> list[dict[str, Any]]:
    """Encoder classification: the user text in, the label's index out."""
    index = {label: i for i, label in enumerate(labels)}
    texts = ["\n".join(m["content"] for m in r["messages"] if m["role"] == "user") for r in records]
    encoded = tokenizer(texts, truncation=True, max_length=max_seq_len)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": index[str(r["label"])]}
        for ids, mask, r in zip(
            encoded["input_ids"], encoded["attention_mask"], records, strict=True
        )
    ]


def count_loss_tokens(features: list[dict[str, Any]]) -> int:
    return sum(sum(1 for t in f["labels"] if t != IGNORE_INDEX) for f in features)


@dataclass
class PackedCollator:
    """Lays a batch end to end in one row: input_ids, labels, position ids restarting at 0 for
    each example, and the example boundaries. The first label of each example is masked, so no
    token learns to predict across an example boundary."""

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        ends = [0]
        for feature in batch:
            ids += feature["input_ids"]
            labels += [IGNORE_INDEX, *feature["labels"][1:]]
            positions += range(len(feature["input_ids"]))
            ends.append(len(ids))
        # Example boundaries as cumulative lengths, the form flash-attention's varlen kernels
        # and our packed SDPA (`training.attention`) read; other attention ignores them.
        bounds = torch.tensor(ends, dtype=torch.int32)
        longest = max(b - a for a, b in itertools.pairwise(ends))
        return {
            "input_ids": torch.tensor([ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
            "cu_seq_lens_q": bounds,
            "cu_seq_lens_k": bounds,
            "max_length_q": longest,
            "max_length_k": longest,
        }


@dataclass
class PaddedCollator:
    """Right-padded batches with an attention mask, for methods that cannot pack."""

    pad_token_id: int

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in batch)
        ids, labels, mask = [], [], []
        for feature in batch:
            pad = width - len(feature["input_ids"])
            ids.append(feature["input_ids"] + [self.pad_token_id] * pad)
            labels.append(feature["labels"] + [IGNORE_INDEX] * pad)
            mask.append([1] * len(feature["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }
