"""The one generation thread, fed by a queue, batching what waits.

The model is not safe to use from several threads at once (adapter switching, the KV cache), so
every request becomes a `Job` on one queue and a single worker thread runs them; the event loop
only awaits results and stays free to answer /health while the worker computes. Non-streaming
jobs that wait with the same model and decoding settings run together as one left-padded batch
(up to `batch_size`), which is what keeps many concurrent clients responsive on a CPU; streaming
jobs run one at a time. Jobs are taken in arrival order, so none waits behind later arrivals.

Generation itself is `generate.generate_batch`, the code evaluation uses, so a served answer
equals an evaluated one for the same greedy settings; it also returns the new token ids (usage
counts, finish_reason) and passes a streaming job's streamer and stop check to `generate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from transformers import StoppingCriteria, StoppingCriteriaList

from tunewright.generate import Decoding, generate_batch
from tunewright.serving.errors import APIError
from tunewright.serving.pool import Entry, ModelPool

logger = logging.getLogger("tunewright.serve")


@dataclass(frozen=True)
class Generation:
    text: str
    completion_tokens: int  # generated tokens, the end-of-turn token included
    finish_reason: str  # "stop": ended its turn; "length": reached max_tokens


@dataclass(eq=False)
class Job:
    entry: Entry
    prompt: list[int]
    decoding: Decoding
    seed: int | None  # None: sampling gets a fresh random seed per batch
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Generation] | None = None  # non-streaming result
    events: asyncio.Queue[Any] | None = None  # streaming: text pieces, then a Generation
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> tuple[str, Decoding, int | None]:
        """Jobs with equal keys can share one batch."""
        return self.entry.model_id, self.decoding, self.seed

    def push(self, item: Any) -> None:
        """Hand a text piece, the final Generation or an exception to the event loop."""
        # A closed event loop raises RuntimeError: the server has stopped, nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._accept, item)

    def _accept(self, item: Any) -> None:  # runs on the event loop
        if self.events is not None:
            self.events.put_nowait(item)
        elif self.future is not None and not self.future.done() and not isinstance(item, str):
            if isinstance(item, BaseException):
                self.future.set_exception(item)
            else:
                self.future.set_result(item)


class GenerationWorker:
    def __init__(self, pool: ModelPool, batch_size: int, metrics: Any) -> None:
        self._pool = pool
        self._batch_size = batch_size
        self._metrics = metrics
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._pending: deque[Job] = deque()  # taken from the inbox, not yet run
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tunewright-generate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._inbox.put(None)
        self._thread.join(timeout)

    async def complete(
        self, entry: Entry, prompts: list[list[int]], decoding: Decoding, seed: int | None
    ) -> list[Generation]:
        """The generations for `prompts`, in order (they may share a batch with others)."""
        loop = asyncio.get_running_loop()
        jobs = [
            Job(entry, prompt, decoding, seed, loop, future=loop.create_future())
            for prompt in prompts
        ]
        for job in jobs:
            self._submit(job)
        try:
            # return_exceptions: every future's outcome is retrieved (a failed batch fails all
            # of them), then the first failure is raised.
            outcomes = await asyncio.gather(
                *(job.future for job in jobs if job.future), return_exceptions=True
            )
        finally:
            for job in jobs:  # a job still waiting when the caller gave up is skipped
                job.cancelled.set()
        results = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    async def stream(
        self, entry: Entry, prompt: list[int], decoding: Decoding, seed: int | None
    ) -> AsyncIterator[str | Generation]:
        """Text pieces as they are generated, then the final Generation."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        job = Job(entry, prompt, decoding, seed, loop, events=events)
        self._submit(job)
        try:
            while True:
                item = await events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Generation):
                    return
        finally:  # the client went away or the stream ended: stop generating for it
            job.cancelled.set()

    def _submit(self, job: Job) -> None:
        if self._stopping:
            raise APIError(503, "The server is shutting down.")
        self._metrics.queue_depth.inc()
        self._inbox.put(job)

    # --- the worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._metrics.queue_depth.dec(len(batch))
            batch = [job for job in batch if not job.cancelled.is_set()]
            if not batch:
                continue
            self._metrics.batch_size.observe(len(batch))
            try:
                if batch[0].events is not None:
                    self._run_stream(batch[0])
                else:
                    self._run_batch(batch)
            except Exception as exc:  # a failed batch fails its requests, not the server
                logger.exception("generation failed")
                # As an APIError the route answers a plain 500; an unhandled exception would
                # also make uvicorn drop the client's keep-alive connection.
                error = APIError(500, f"generation failed ({type(exc).__name__}: {exc})")
                for job in batch:
                    job.push(error)
        self._fail_pending()

    def _next_batch(self) -> list[Job] | None:
        """The oldest waiting job and up to batch_size - 1 later ones that can share its batch;
        None when stopping."""
        if not self._pending and not self._stopping:
            self._take(self._inbox.get())
        while not self._stopping:
            try:
                self._take(self._inbox.get_nowait())
            except queue.Empty:
                break
        if self._stopping or not self._pending:
            return None
        first = self._pending.popleft()
        if first.events is not None:
            return [first]
        batch, rest = [first], deque()
        for job in self._pending:
            fits = job.events is None and job.key == first.key
            (batch if fits and len(batch) < self._batch_size else rest).append(job)
        self._pending = rest
        return batch

    def _take(self, item: Job | None) -> None:
        if item is None:
            self._stopping = True
        else:
            self._pending.append(item)

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._pending.append(item)
        for job in self._pending:
            job.push(APIError(503, "The server is shutting down."))
        self._metrics.queue_depth.dec(len(self._pending))
        self._pending.clear()

    def _run_batch(self, batch: list[Job]) -> None:
        first = batch[0]
        started = time.perf_counter()
        with self._pool.active(first.entry):
            output = generate_batch(
                self._pool.model,
                first.entry.tokenizer,
                [job.prompt for job in batch],
                _seeded(first),
            )
        counts = list(_new_token_counts(output.new_ids, first.entry.stop_ids))
        self._record_speed(sum(n for n, _ in counts), time.perf_counter() - started)
        for job, text, (n, finish) in zip(batch, output.texts, counts, strict=True):
            job.push(Generation(text, n, finish))

    def _run_stream(self, job: Job) -> None:
        streamer = _PieceStreamer(job.entry.tokenizer, job.push)
        started = time.perf_counter()
        with self._pool.active(job.entry):
            output = generate_batch(
                self._pool.model,
                job.entry.tokenizer,
                [job.prompt],
                _seeded(job),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Cancelled(job.cancelled)]),
            )
        [(n, finish)] = _new_token_counts(output.new_ids, job.entry.stop_ids)
        self._record_speed(n, time.perf_counter() - started)
        job.push(Generation(output.texts[0], n, finish))

    def _record_speed(self, tokens: int, seconds: float) -> None:
        if seconds > 0:
            self._metrics.tokens_per_second.set(tokens / seconds)


def _seeded(job: Job) -> Decoding:
    """The job's decoding, with a fresh seed when it samples without one (else every unseeded
    request would draw the same numbers)."""
    if job.decoding.do_sample and job.seed is None:
        return dataclasses.replace(job.decoding, seed=random.randrange(2**31))
    return job.decoding


def _new_token_counts(
    new_ids: list[list[int]], stop_ids: frozenset[int]
) -> Iterator[tuple[int, str]]:
    """(generated tokens up to and including the first end-of-turn token, finish_reason) per
    row of new token ids."""
    for row in new_ids:
        stop_at = next((i for i, token in enumerate(row) if token in stop_ids), None)
        yield (len(row), "length") if stop_at is None else (stop_at + 1, "stop")


class _PieceStreamer:
    """A transformers streamer sending new text to `emit` as it is generated.

    Each step decodes all new tokens again (at most max_tokens, so cheap) and sends what was
    added, so the pieces join to exactly the final decoded text; text ending in an incomplete
    UTF-8 character waits for its remaining bytes. Whitespace at the start and end is held back
    and dropped, as `generate_batch` strips the final text.
    """

    def __init__(self, tokenizer: Any, emit: Callable[[str], None]) -> None:
        self._tokenizer = tokenizer
        self._emit = emit
        self._ids: list[int] = []
        self._prompt_seen = False  # generate first puts the prompt, then one token per step
        self._sent_chars = 0
        self._started = False
        self._held = ""

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._ids.extend(value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)  # bytes that never formed a character go out as they decode

    def _flush(self, final: bool) -> None:
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:
            return
        self._send(text[self._sent_chars :])
        self._sent_chars = len(text)

    def _send(self, piece: str) -> None:
        if not self._started:
            piece = piece.lstrip()
            self._started = bool(piece)
        body = piece.rstrip()
        if body:
            self._emit(self._held + body)
            self._held = piece[len(body) :]
        else:
            self._held += piece


class _Cancelled(StoppingCriteria):
    """Stopping criterion: ends a streaming generation once its client has gone."""

    def __init__(self, flag: threading.Event) -> None:
        super().__init__()
        self._flag = flag

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stop = self._flag.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)
