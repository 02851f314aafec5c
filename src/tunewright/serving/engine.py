"""Iteration-level scheduling: a decode loop where requests join the running batch between
decoding steps and leave it as soon as they end.

`RunningBatch` holds the rows being decoded over one KV cache (transformers' `DynamicCache`),
left-padded to a common length. Admitting rows prefills their prompts together (one forward
over the new prompts, left-padded), then concatenates their cache with the running one along
the batch axis, padding the shorter in time with masked-out positions. Each step is one forward
over the last token of every row; a row's position id is its own count of real tokens, so
padding never shifts rotary positions. Rows that end are dropped from the cache, and columns
that became padding for every row are trimmed, so a long-running batch does not grow.

Transformers' own continuous batching (paged cache, `generate_batch` / `init_continuous_batching`)
was measured first on this machine kind (2 CPU cores, SmolLM2-135M, 32 prompts x 16 tokens):
it works on CPU but is built around CUDA-sized paged blocks and graphs, and its manager has no
per-request logits processing, stop strings, streaming hooks or adapter switching, all of which
the server needs; this loop keeps those per row (`rows.Row`) and runs on any model whose cache
layers are plain `DynamicLayer`s (full attention). Others (sliding-window layers) fall back to
batch-at-a-time `generate` in the worker.

Sampling is per row: its own temperature, top-p and `torch.Generator` (seeded by the request's
`seed`), so a seeded request draws the same tokens whatever it shares a batch with.
"""

from __future__ import annotations

import random
from typing import Any


class Sampler:
    """One row's choice of the next token from its scores."""

    def __init__(self, do_sample: bool, temperature: float, top_p: float, seed: int | None) -> None:
        import torch

        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self._generator: Any = None
        if do_sample:
            self._generator = torch.Generator().manual_seed(
                seed if seed is not None else random.randrange(2**63)
            )

    def choose(self, scores: Any) -> int:
        import torch

        if not self.do_sample:
            return int(scores.argmax())
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            ordered, order = probs.sort(descending=True)
            # keep the smallest set of tokens whose mass reaches top_p (the best one always)
            outside = ordered.cumsum(-1) - ordered > self.top_p
            ordered[outside] = 0
            probs = torch.zeros_like(probs).scatter_(0, order, ordered)
        return int(torch.multinomial(probs.cpu(), 1, generator=self._generator))


class RunningBatch:
    """Rows decoding together over one KV cache (worker thread only)."""

    def __init__(self, model: Any, pad_id: int) -> None:
        self.model = model
        self.pad_id = pad_id
        self.rows: list[Any] = []  # the caller's row objects, in cache order
        self._cache: Any = None
        self._mask: Any = None  # [rows, length]: 1 real token, 0 padding
        self._last: list[int] = []  # each row's latest token, fed at the next step

    def admit(self, rows: list[Any], prompts: list[list[int]]) -> Any:
        """Prefills `prompts` and adds `rows` to the batch; returns their next-token scores."""
        import torch
        from transformers import DynamicCache

        device = self._device()
        width = _bucketed(max(len(p) for p in prompts))
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        with torch.no_grad():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        self._merge(cache, mask)
        self.rows.extend(rows)
        self._last.extend([0] * len(rows))  # set by `set_next` before the next step
        return out.logits[:, -1].float()

    def set_next(self, index: int, token: int) -> None:
        self._last[index] = token

    def step(self) -> Any:
        """One decoding step over every row's latest token; returns next-token scores."""
        import torch

        device = self._device()
        positions = self._mask.sum(-1, keepdim=True)  # each row's count of real tokens
        ones = torch.ones((len(self.rows), 1), dtype=self._mask.dtype, device=device)
        self._mask = torch.cat([self._mask, ones], dim=1)
        ids = torch.tensor(self._last, device=device)[:, None]
        with torch.no_grad():
            out = self.model(
                input_ids=ids,
                attention_mask=self._mask,
                position_ids=positions,
                cache=self._cache,
                use_cache=True,
            )
        return out.logits[:, -1].float()

    def keep(self, indices: list[int]) -> None:
        """Drops every row not in `indices` (ascending) from the cache."""
        import torch

        if len(indices) == len(self.rows):
            return
        if not indices:
            self.rows, self._last, self._cache, self._mask = [], [], None, None
            return
        select = torch.tensor(indices, device=self._mask.device)
        self._mask = self._mask.index_select(0, select)
        start = int((self._mask.sum(0) > 0).nonzero()[0])  # columns before: padding everywhere
        self._mask = self._mask[:, start:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, select)[:, :, start:]
            layer.values = layer.values.index_select(0, select)[:, :, start:]
        self.rows = [self.rows[i] for i in indices]
        self._last = [self._last[i] for i in indices]

    def _merge(self, cache: Any, mask: Any) -> None:
        if self._cache is None:
            self._cache, self._mask = cache, mask
            return
        length = max(self._mask.shape[1], mask.shape[1])
        self._mask = _cat_left_padded(self._mask, mask, length, dim=1)
        for mine, new in zip(self._cache.layers, cache.layers, strict=True):
            mine.keys = _cat_left_padded(mine.keys, new.keys, length, dim=2)
            mine.values = _cat_left_padded(mine.values, new.values, length, dim=2)

    def _device(self) -> Any:
        return next(self.model.parameters()).device


# Prefill widths are rounded up to a multiple of this many tokens (more left padding, masked
# out): every distinct (rows x width) shape makes the CPU matmul library build and cache a
# kernel with its own buffers, and with exact widths a soak's memory kept growing as new
# shapes arrived; 16 costs at most 15 padded positions per prompt.
PREFILL_BUCKET = 16


def _bucketed(width: int) -> int:
    return -(-width // PREFILL_BUCKET) * PREFILL_BUCKET


def _cat_left_padded(first: Any, second: Any, length: int, dim: int) -> Any:
    """`first` and `second` stacked on axis 0, each zero-padded on the left of `dim` to
    `length`."""
    import torch

    def padded(t: Any) -> Any:
        missing = length - t.shape[dim]
        if not missing:
            return t
        shape = list(t.shape)
        shape[dim] = missing
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    return torch.cat([padded(first), padded(second)], dim=0)


def supports_continuous(model: Any) -> bool:
    """Whether the model's KV cache is plain full-attention layers this loop can merge."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)
