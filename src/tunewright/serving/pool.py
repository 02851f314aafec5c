"""The served model: one base, any number of PEFT adapters over it, and a tokenizer per id.

Each id renders prompts with the chat template saved beside its weights (an adapter folder
carries the template it was trained with), so serving cannot drift from training. The model is
used only by the generation worker thread: `active` switches adapters, which is not thread-safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.device import detect_device
from tunewright.generate import stop_token_ids
from tunewright.serving.errors import APIError


@dataclass(frozen=True)
class AdapterSpec:
    model_id: str
    path: Path


@dataclass(frozen=True)
class ServeTarget:
    """What to serve: a base model folder offered as `base_id`, plus adapters over it."""

    base: Path
    base_id: str
    adapters: tuple[AdapterSpec, ...] = ()
    dtype: str = "auto"
    attn_implementation: str = "auto"  # model.attn_implementation

    @property
    def model_ids(self) -> list[str]:
        return [self.base_id, *(a.model_id for a in self.adapters)]


@dataclass(frozen=True)
class Entry:
    """One id clients can ask for."""

    model_id: str
    adapter: str | None  # PEFT adapter name; None: the base with every adapter switched off
    tokenizer: Any
    stop_ids: frozenset[int]
    context: int | None  # longest sequence the model takes (prompt + new tokens), if known
    vocab_size: int = 0  # rows of the model's output layer (may exceed the tokenizer's)


class ModelPool:
    def __init__(self, model: Any, entries: list[Entry], created: int) -> None:
        self.model = model
        self.entries = {entry.model_id: entry for entry in entries}
        self.created = created  # unix time the model was loaded, for /v1/models

    def ids(self) -> list[str]:
        return list(self.entries)

    def get(self, model_id: str) -> Entry:
        entry = self.entries.get(model_id)
        if entry is None:
            raise APIError(
                404,
                # The requested name is not repeated: errors never echo request content.
                "The requested model does not exist on this server. "
                f"Served models: {', '.join(self.entries)}.",
                param="model",
                code="model_not_found",
            )
        return entry

    @contextlib.contextmanager
    def active(self, entry: Entry) -> Iterator[None]:
        """Route generation through `entry`'s adapter, or the bare base (worker thread only)."""
        if not hasattr(self.model, "peft_config"):
            yield
        elif entry.adapter is None:
            with self.model.disable_adapter():
                yield
        else:
            # inference_mode: PEFT would otherwise mark the adapter trainable (requires_grad)
            self.model.set_adapter(entry.adapter, inference_mode=True)
            yield


def load_pool(target: ServeTarget) -> ModelPool:
    import time

    from tunewright.models import load_causal_lm, load_tokenizer

    model = load_causal_lm(target.base, target.dtype, target.attn_implementation)
    base_tokenizer = load_tokenizer(target.base)
    context = getattr(model.config, "max_position_embeddings", None)
    vocab = model.get_output_embeddings().weight.shape[0]
    entries = [_entry(target.base_id, None, base_tokenizer, context, vocab)]
    for index, spec in enumerate(target.adapters):
        # PEFT adapter names become module keys, which cannot hold the dots and slashes that
        # model ids may; clients only ever see the ids.
        name = f"adapter{index}"
        model = _attach_adapter(model, spec.path, name)
        tokenizer = load_tokenizer(spec.path) if _has_tokenizer(spec.path) else base_tokenizer
        entries.append(_entry(spec.model_id, name, tokenizer, context, vocab))
    if detect_device() == "cuda":
        model = model.to("cuda")
    return ModelPool(model.eval(), entries, created=int(time.time()))


def _attach_adapter(model: Any, path: Path, name: str) -> Any:
    if hasattr(model, "peft_config"):
        model.load_adapter(str(path), adapter_name=name)
        return model
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(path), adapter_name=name)


def _entry(
    model_id: str, adapter: str | None, tokenizer: Any, context: int | None, vocab: int
) -> Entry:
    stops = frozenset(stop_token_ids(tokenizer))
    return Entry(model_id, adapter, tokenizer, stops, context, vocab)


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file()
