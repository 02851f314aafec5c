"""Batched generation, shared by evaluation and serving.

Prompts go through the tokenizer's chat template (`chat.prompt_ids`, the same rendering as
training), are sorted by length so each batch pads little, left-padded (decoder-only models
continue from the right edge), and decoded with the KV cache until every sequence has produced
an end-of-turn token or `max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunewright.chat import prompt_ids

# End-of-turn markers of common chat templates; any that the tokenizer knows stops generation.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>", "<|endoftext|>")


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


def stop_token_ids(tokenizer: Any) -> list[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN if token in vocab)
    return sorted(ids)


def generate(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, Any]]],
    decoding: Decoding = Decoding(),
    batch_size: int = 8,
    tools: list[Any] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """The assistant's reply to each conversation, in input order."""
    prompts = [prompt_ids(tokenizer, conv, tools=tools) for conv in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    replies: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        texts = generate_ids(model, tokenizer, [prompts[i] for i in chunk], decoding)
        for index, text in zip(chunk, texts, strict=True):
            replies[index] = text
        if on_batch:
            on_batch(len(chunk))
    return replies


@dataclass(frozen=True)
class Batch:
    """One generated batch: the replies, and each row's new token ids (after the prompt; the
    row may run on past its end-of-turn token with padding)."""

    texts: list[str]
    new_ids: list[list[int]]


def generate_ids(
    model: Any, tokenizer: Any, prompts: list[list[int]], decoding: Decoding
) -> list[str]:
    """One left-padded batch of token-id prompts -> decoded replies (special tokens removed)."""
    return generate_batch(model, tokenizer, prompts, decoding).texts


def generate_batch(
    model: Any, tokenizer: Any, prompts: list[list[int]], decoding: Decoding, **extra: Any
) -> Batch:
    """`generate_ids` with the new token ids kept; `extra` goes to `model.generate` (a streamer,
    stopping criteria), so serving shares this path with evaluation."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    sampling: dict[str, Any] = {"do_sample": decoding.do_sample}
    if decoding.do_sample:
        torch.manual_seed(decoding.seed)
        sampling.update(temperature=decoding.temperature, top_p=decoding.top_p)
    else:  # greedy: silence sampling defaults a generation_config may carry
        sampling.update(temperature=None, top_p=None, top_k=None)
    device = next(model.parameters()).device
    with torch.no_grad():
        output = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=decoding.max_new_tokens,
            eos_token_id=stop_token_ids(tokenizer),
            pad_token_id=pad,
            **sampling,
            **extra,
        )
    new_tokens = output[:, width:]
    texts = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]
    return Batch(texts, new_tokens.tolist())
