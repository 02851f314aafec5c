"""Token lengths for the data stage, without tokenizing every row of a big dataset.

Rendering every conversation through the chat template and tokenizing it cost ~150 µs a row,
more than all the checks together, and the tokenizer's per-row encodings held gigabytes. What
the stage needs is exact, though: which rows are over `max_seq_len` (pairs over it are
rejected, the rest counted as truncated), and length statistics.

So each conversation gets a cheap upper bound first: its rendered text is the template's own
text for that sequence of roles (learnt once per sequence, by rendering it with one-character
contents) plus the UTF-8 bytes of its contents, and no tokenizer we support makes more tokens
than bytes, beyond a few for a dummy prefix or added specials (SLACK). Rows whose bound is over
the limit are tokenized exactly, so over-long counts and rejections are exact. The statistics
come from an exact random sample (SAMPLE rows; every row when there are no more), and the bound
is checked against every sampled row: one sampled row over its bound and every row is tokenized.
Conversations with tools or tool calls (templates render them in their own ways) are always
tokenized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewright.data.records import Record, sides

SAMPLE = 4_000  # rows tokenized for the statistics (p95 within +-0.7 percentile points, 2 SE)
BATCH = 4_096  # conversations per tokenizer call: bounds the tokenizer's per-row memory
SLACK_PER_MESSAGE = 2
SLACK = 8


@dataclass(frozen=True, slots=True)
class Length:
    """A kept record's longest side in tokens (None: not tokenized, within the limit), and
    whether it belongs to the sample the statistics are computed from."""

    tokens: int | None
    in_sample: bool


@dataclass
class Measured:
    """Per record: the longest side in tokens, or None when it was not tokenized (its bound is
    within the limit). `sampled[i]` marks the records of the random sample the statistics use;
    None when every record was tokenized."""

    lengths: list[list[int | None]]
    sampled: list[bool] | None

    def longest(self, index: int) -> int | None:
        """The record's longest side, or None when any side was only bounded."""
        known = [n for n in self.lengths[index] if n is not None]
        return max(known, default=0) if len(known) == len(self.lengths[index]) else None


def measure(tokenizer: Any, records: Sequence[Record], limit: int, seed: int) -> Measured:
    """Token lengths of each side of each record (records.sides): exact where it matters, see
    the module doc."""
    named = [sides(r) for r in records]
    conversations = [conv for record_sides in named for _, conv in record_sides]
    owners = [i for i, record_sides in enumerate(named) for _ in record_sides]
    tools = [records[i].get("tools") for i in owners]
    if len(records) <= SAMPLE:
        flat: list[int | None] = list(_exact(tokenizer, conversations, tools))
        return Measured(_regroup(flat, named), None)
    rng = np.random.default_rng(seed)
    in_sample = np.zeros(len(records), dtype=bool)
    in_sample[rng.choice(len(records), SAMPLE, replace=False)] = True
    bounds = _bounds(tokenizer, conversations, tools)
    wanted = [
        k
        for k, bound in enumerate(bounds)
        if bound is None or bound > limit or in_sample[owners[k]]
    ]
    measured = _exact(tokenizer, [conversations[k] for k in wanted], [tools[k] for k in wanted])
    exact = dict(zip(wanted, measured, strict=True))
    if any(_over_bound(n, bounds[k]) for k, n in exact.items()):
        # A tokenizer this bound does not hold for: measure everything rather than guess.
        flat = list(_exact(tokenizer, conversations, tools))
        return Measured(_regroup(flat, named), None)
    flat = [exact.get(k) for k in range(len(conversations))]
    return Measured(_regroup(flat, named), in_sample.tolist())


def _over_bound(tokens: int, bound: int | None) -> bool:
    return bound is not None and tokens > bound


def _regroup(flat: list[int | None], named: list[list[tuple[str, Any]]]) -> list[list[int | None]]:
    values = iter(flat)
    return [[next(values) for _ in record_sides] for record_sides in named]


def _exact(tokenizer: Any, conversations: list[Any], tools: list[Any]) -> list[int]:
    out: list[int] = []
    chat = bool(getattr(tokenizer, "chat_template", None))
    for start in range(0, len(conversations), BATCH):
        part = conversations[start : start + BATCH]
        if chat:
            from tunewright.chat import token_lengths

            out += token_lengths(tokenizer, part, tools=tools[start : start + BATCH])
        else:
            texts = ["\n".join(m["content"] for m in conv) for conv in part]
            out += [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
    return out


def _bounds(tokenizer: Any, conversations: list[Any], tools: list[Any]) -> list[int | None]:
    """An upper bound on each conversation's token count, or None where there is none cheap."""
    chat = bool(getattr(tokenizer, "chat_template", None))
    overheads: dict[tuple[str, ...], int] = {}
    out: list[int | None] = []
    for conversation, conversation_tools in zip(conversations, tools, strict=True):
        if conversation_tools or any(len(m) > 2 and set(m) - _PLAIN for m in conversation):
            out.append(None)
            continue
        contents = sum(len(m["content"].encode("utf-8")) for m in conversation)
        if chat:
            roles = tuple(m["role"] for m in conversation)
            if roles not in overheads:
                overheads[roles] = _template_overhead(tokenizer, roles)
            contents += overheads[roles]
        else:
            contents += len(conversation)  # the "\n" joins
        out.append(contents + SLACK + SLACK_PER_MESSAGE * len(conversation))
    return out


_PLAIN = frozenset({"role", "content", "weight"})


def _template_overhead(tokenizer: Any, roles: tuple[str, ...]) -> int:
    """Bytes the template adds around the contents of a conversation with these roles."""
    from tunewright.chat import rendered_text

    probe = [{"role": role, "content": "x"} for role in roles]
    return len(rendered_text(tokenizer, probe).encode("utf-8")) - len(roles)
