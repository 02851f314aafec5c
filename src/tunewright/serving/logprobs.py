"""Log-probabilities of generated tokens, for `logprobs` / `top_logprobs`.

They come from one forward pass over prompt + completion after generation, not from the scores
inside `generate`: that way they are the model's own distribution (before temperature, top-p or a
grammar's mask) whatever decoded the tokens, and the decoding loop stays free of bookkeeping.
The pass costs about one prefill of the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]  # the most likely tokens at this position, best first


def token_logprobs(
    model: Any, tokenizer: Any, prompt: list[int], completion: list[int], top: int
) -> list[TokenLogprob]:
    """One TokenLogprob per completion token (under the adapter active on `model`)."""
    import torch

    if not completion:
        return []
    device = next(model.parameters()).device
    ids = torch.tensor([prompt + completion], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    chosen = logprobs.gather(1, torch.tensor(completion, device=device)[:, None])[:, 0]
    best = logprobs.topk(top, dim=-1) if top else None
    out = []
    for position, token in enumerate(completion):
        alternatives = []
        if best is not None:
            values, indices = best.values[position].tolist(), best.indices[position].tolist()
            alternatives = [(_text(tokenizer, i), v) for i, v in zip(indices, values, strict=True)]
        out.append(TokenLogprob(_text(tokenizer, token), float(chosen[position]), alternatives))
    return out


def chat_logprobs(tokens: list[TokenLogprob]) -> list[dict[str, Any]]:
    """The chat API's `logprobs.content`."""
    return [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": list(t.token.encode("utf-8")),
            "top_logprobs": [
                {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}
                for text, value in t.top
            ],
        }
        for t in tokens
    ]


def completion_logprobs(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """The legacy completions API's `logprobs` object."""
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }


def _text(tokenizer: Any, token: int) -> str:
    return tokenizer.decode([token], skip_special_tokens=False)
