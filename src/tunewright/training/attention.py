"""Attention over packed batches, one example at a time.

A padding-free batch lays its examples end to end in one row. Left to the model, SDPA then
attends over the whole row with a block-diagonal mask built from the position ids: (sum of the
lengths)^2 work, and a masked kernel that cannot skip the blocks it throws away. Here each
example's slice runs through SDPA's causal kernel on its own: sum of length^2 work, 4x less for
four examples of equal length, and the same result (each token sees only its own example).

The collator marks the boundaries with `cu_seq_lens_q` / `cu_seq_lens_k` (cumulative lengths,
the names flash-attention's variable-length kernels and transformers already use), which the
model passes down to its attention function untouched.
"""

from __future__ import annotations

import itertools
from typing import Any

PACKED_SDPA = "tunewright_packed_sdpa"
_BOUNDARY_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")


def packed_sdpa(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """transformers' SDPA attention, run on each example of a packed row with the causal flag
    (no mask tensor: SDPA's flash kernel then skips the blocks above the diagonal)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    for name in _BOUNDARY_KEYS:
        kwargs.pop(name, None)
    if bounds is None:  # not a packed batch (generation, a padded batch): plain SDPA
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    edges = bounds.tolist()
    parts = [
        sdpa_attention_forward(
            module,
            query[:, :, a:b],
            key[:, :, a:b],
            value[:, :, a:b],
            None,
            is_causal=True,
            **kwargs,
        )[0]
        for a, b in itertools.pairwise(edges)
    ]
    return torch.cat(parts, dim=1), None


def register_packed_sdpa() -> str:
    """Make `PACKED_SDPA` a name `from_pretrained(attn_implementation=...)` and
    `set_attn_implementation` accept. Its masks are SDPA's, so the model stays correct for any
    other use (a padded batch, generation); on packed batches the mask is not used."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(PACKED_SDPA, packed_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_SDPA, sdpa_mask)
    return PACKED_SDPA
