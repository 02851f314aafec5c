"""Per-example loss on the assistant tokens, the same tokens training puts loss on."""

from __future__ import annotations

import math
from typing import Any

from tunewright.chat import IGNORE_INDEX, render_example


def example_losses(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, Any]]], max_seq_len: int
) -> list[tuple[float, int]]:
    """(summed cross-entropy in nats, labelled token count) per conversation."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    results = []
    for messages in conversations:
        rendered = render_example(tokenizer, messages, max_seq_len=max_seq_len)
        targets = torch.tensor(rendered.labels[1:], device=device)
        keep = (targets != IGNORE_INDEX).nonzero().squeeze(-1)
        if keep.numel() == 0:
            results.append((0.0, 0))
            continue
        ids = torch.tensor([rendered.input_ids], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids, logits_to_keep=keep, use_cache=False).logits[0]
        loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum")
        results.append((float(loss), int(keep.numel())))
    return results


def mean_loss(pairs: list[tuple[float, int]]) -> float:
    """Token-weighted mean loss over examples."""
    tokens = sum(n for _, n in pairs)
    return sum(s for s, _ in pairs) / tokens if tokens else math.nan
