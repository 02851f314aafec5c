"""The chat page: a run's base and tuned models answering the same prompt, streamed, with the
eval's decoding settings (`eval.max_new_tokens`, greedy, as evaluation/stage.py decodes).

Models load in a background thread (the page polls `status` for progress), once per run and
source: `adapter` (the base with the trained adapter, switched off for the base's answers, as
evaluation does) or `merged` (export/merged beside a second copy of the base). One model
generates one answer at a time: the adapter is switched per answer, so a lock serialises them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError
from tunewright.generate import Decoding
from tunewright.runs import merged_dir, trained_output
from tunewright.ui.catalog import load_run_config

SOURCES = ("adapter", "merged")


@dataclass
class Slot:
    """One run's loaded models, or their loading."""

    run: Path
    source: str
    state: str = "loading"  # loading, ready, failed
    step: str = "starting"
    error: str | None = None
    started: float = field(default_factory=time.time)
    tuned: Any = None
    base: Any = None  # None with an adapter: the tuned model with its adapter switched off
    tokenizer: Any = None
    decoding: Decoding = field(default_factory=Decoding)
    described: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "step": self.step,
            "error": self.error,
            "seconds": round(time.time() - self.started, 1),
            "models": self.described,
            "decoding": {
                "max_new_tokens": self.decoding.max_new_tokens,
                "do_sample": self.decoding.do_sample,
            },
        }


class ChatRoom:
    def __init__(self) -> None:
        self.slots: dict[tuple[Path, str], Slot] = {}
        self._lock = threading.Lock()

    def load(self, run: Path, source: str) -> Slot:
        """The slot for (run, source), its loading started in a thread when new or failed."""
        if source not in SOURCES:
            raise TunewrightError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        with self._lock:
            slot = self.slots.get((run, source))
            if slot is None or slot.state == "failed":
                slot = self.slots[(run, source)] = Slot(run, source)
                threading.Thread(target=_load, args=(slot,), daemon=True).start()
            return slot

    def get(self, run: Path, source: str) -> Slot | None:
        return self.slots.get((run, source))


def _load(slot: Slot) -> None:
    try:
        _load_models(slot)
        slot.state, slot.step = "ready", "ready"
    except Exception as exc:  # shown on the page; the UI keeps serving
        slot.state, slot.error = "failed", f"{type(exc).__name__}: {exc}"


def _load_models(slot: Slot) -> None:
    from tunewright.models import load_causal_lm, load_tokenizer, resolve_model

    slot.step = "reading the run's config"
    config = load_run_config(slot.run)
    slot.decoding = Decoding(max_new_tokens=config.eval.max_new_tokens, seed=config.seed)
    tuned_dir = trained_output(slot.run) if slot.source == "adapter" else merged_dir(slot.run)
    if tuned_dir is None or not tuned_dir.is_dir():
        what = "a trained model (train stage)" if slot.source == "adapter" else "export/merged"
        raise TunewrightError(f"this run has no {what} yet")
    slot.described = {"base": config.model.name, "tuned": str(tuned_dir)}

    def load(folder: Path) -> Any:
        return load_causal_lm(folder, config.model.dtype, config.model.attn_implementation).eval()

    slot.step = f"resolving base model {config.model.name}"
    base_dir = resolve_model(config.model.name)
    slot.tokenizer = load_tokenizer(tuned_dir)  # carries the chat template used in training
    if slot.source == "merged" or tuned_dir.name == "model":
        slot.step = f"loading tuned weights from {tuned_dir}"
        slot.tuned = load(tuned_dir)
        slot.step = f"loading base weights from {base_dir}"
        slot.base = load(base_dir)
        return
    from peft import PeftModel

    slot.step = f"loading base weights from {base_dir}"
    base = load(base_dir)
    slot.step = f"loading the adapter from {tuned_dir}"
    slot.tuned = PeftModel.from_pretrained(base, tuned_dir).eval()


def stream_reply(slot: Slot, which: str, prompt: str) -> Iterator[str]:
    """The `which` model's reply to one user turn, piece by piece as it decodes. Blocking:
    the caller iterates it from a worker thread."""
    from transformers import TextIteratorStreamer

    from tunewright.chat import prompt_ids
    from tunewright.generate import generate_batch

    if slot.state != "ready":
        raise TunewrightError("the models are not loaded yet")
    ids = prompt_ids(slot.tokenizer, [{"role": "user", "content": prompt}])
    streamer = TextIteratorStreamer(slot.tokenizer, skip_prompt=True, skip_special_tokens=True)
    failure: list[BaseException] = []

    def generate() -> None:
        with slot.lock, _model_for(slot, which) as model:
            try:
                generate_batch(model, slot.tokenizer, [ids], slot.decoding, streamer=streamer)
            except BaseException as exc:
                failure.append(exc)
                streamer.end()

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    yield from streamer
    worker.join()
    if failure:
        raise failure[0]


@contextlib.contextmanager
def _model_for(slot: Slot, which: str) -> Iterator[Any]:
    if which == "tuned":
        yield slot.tuned
    elif slot.base is not None:
        yield slot.base
    else:
        with slot.tuned.disable_adapter():
            yield slot.tuned
