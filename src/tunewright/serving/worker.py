"""The one generation thread, fed by a bounded queue, decoding requests in one running batch.

The model is not safe to use from several threads at once (adapter switching, the KV cache), so
every request becomes one `Job` per generated choice on one queue and a single worker thread runs
them; the event loop only awaits results and stays free to answer /health while the worker
computes. Scheduling is per decoding step (`engine.RunningBatch`): between two steps, waiting
jobs for the batch's model (adapter) join it, up to `batch_size` rows, streaming and
non-streaming alike, and rows that ended leave and are answered at once. Each row keeps its own
token limit, stop strings, grammar, sampling settings and stream (`rows.Row`). Jobs are taken in
arrival order: a job for another adapter waits for the batch to drain instead of being overtaken.
Models whose cache the loop cannot merge run a batch at a time through `generate.generate_batch`
(the code evaluation uses) with the same per-row handling.

Admission: at most `max_queue` jobs wait; beyond that `submit` refuses with 429 and a
Retry-After estimated from recent throughput. A job whose request deadline passes before it
joins the batch is dropped (the route answers 503), and a job whose client left stops at the
next decoding step.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import math
import queue
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from transformers import (
    LogitsProcessorList,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from tunewright.generate import Decoding, generate_batch
from tunewright.serving.engine import RunningBatch, Sampler, supports_continuous
from tunewright.serving.errors import APIError
from tunewright.serving.logprobs import TokenLogprob, token_logprobs
from tunewright.serving.pool import Entry, ModelPool
from tunewright.serving.rows import Row, RowResult, Rows, RowSpec

logger = logging.getLogger("tunewright.serve")
_STARTED = object()  # pushed to a job when its batch starts


# A waiting request joins a busy batch after at most this long (see Worker._admit).
_ADMIT_WAIT_S = 0.25
_TRIM_EVERY_S = 10.0


def _release_free_memory() -> None:
    """Hands freed heap pages back to the OS (glibc's malloc_trim). Every decoding step
    allocates tensors of a new shape (the batch and the sequence change), and glibc keeps the
    freed pages. Trimming alone left a 10-minute soak growing ~20%: most of that was oneDNN's
    per-shape kernel cache, now bounded (`stage._bound_kernel_cache`, bucketed prefill widths
    in `engine`); see the README's soak row."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(frozen=True)
class Generation:
    text: str
    completion_tokens: int  # generated tokens, the end-of-turn token included
    finish_reason: str  # "stop": ended its turn or met a stop string; "length": max_tokens
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True)
class Params:
    """What one generated choice asks for beyond its prompt."""

    decoding: Decoding
    seed: int | None = None  # None: sampling draws a fresh random seed
    stop: tuple[str, ...] = ()
    grammar: Any | None = None  # a grammar.Constraint the output must follow
    top_logprobs: int | None = None  # None: no logprobs


@dataclass(eq=False)
class Job:
    entry: Entry
    prompt: list[int]
    params: Params
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Generation] | None = None  # non-streaming result
    events: asyncio.Queue[Any] | None = None  # streaming: text pieces, then a Generation
    started: asyncio.Future[None] | None = None
    choice: int = 0  # index among the request's generations: n seeded choices must differ
    cancelled: threading.Event = field(default_factory=threading.Event)
    created: float = field(default_factory=time.perf_counter)
    _state: str = "waiting"  # -> "running" (the worker took it) or "expired" (the route did)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def key(self) -> tuple[str, Decoding, int | None]:
        """Jobs with equal keys can share one batch: the same model and sampling settings."""
        sampling = dataclasses.replace(self.params.decoding, max_new_tokens=0)
        return self.entry.model_id, sampling, self.params.seed

    def claim(self, state: str) -> bool:
        """Moves a waiting job to `state`; False when the worker or the route was first."""
        with self._lock:
            if self._state != "waiting" or self.cancelled.is_set():
                return False
            self._state = state
            return True

    def push(self, item: Any) -> None:
        """Hand a text piece, the final Generation or an exception to the event loop."""
        # A closed event loop raises RuntimeError: the server has stopped, nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._accept, item)

    def _accept(self, item: Any) -> None:  # runs on the event loop
        if self.started is not None and not self.started.done():
            if isinstance(item, BaseException):
                self.started.set_exception(item)
                self.started.exception()  # retrieved: the result carries the error too
            else:
                self.started.set_result(None)
        if item is _STARTED:
            return
        if self.events is not None:
            self.events.put_nowait(item)
        elif self.future is not None and not self.future.done() and not isinstance(item, str):
            if isinstance(item, BaseException):
                self.future.set_exception(item)
            else:
                self.future.set_result(item)


class GenerationWorker:
    def __init__(
        self, pool: ModelPool, batch_size: int, metrics: Any, max_queue: int = 1 << 30
    ) -> None:
        self._pool = pool
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._metrics = metrics
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._pending: deque[Job] = deque()  # taken from the inbox, not yet run
        self._waiting = 0  # jobs submitted and not yet taken into a batch
        self._count_lock = threading.Lock()
        self._job_seconds = 1.0  # recent generation seconds per job, for Retry-After
        self._window_start, self._window_tokens = time.perf_counter(), 0  # tokens/s gauge
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tunewright-generate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._inbox.put(None)
        self._thread.join(timeout)

    def submit(
        self, entry: Entry, prompts: list[list[int]], params: Params, stream: bool = False
    ) -> list[Job]:
        """Queues one job per prompt; 429 when the queue has no room for all of them."""
        loop = asyncio.get_running_loop()
        jobs = [
            Job(
                entry,
                prompt,
                params,
                loop,
                future=None if stream else loop.create_future(),
                events=asyncio.Queue() if stream else None,
                started=loop.create_future(),
                choice=index,
            )
            for index, prompt in enumerate(prompts)
        ]
        if self._stopping:
            raise APIError(503, "The server is shutting down.")
        with self._count_lock:
            if self._waiting + len(jobs) > self._max_queue:
                raise APIError(
                    429,
                    f"The server is at capacity ({self._waiting} generations waiting, "
                    f"serve.max_queue is {self._max_queue}); retry later.",
                    code="server_overloaded",
                    retry_after=self.retry_after(),
                )
            self._waiting += len(jobs)
        self._metrics.queue_depth.inc(len(jobs))
        for job in jobs:
            self._inbox.put(job)
        return jobs

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained enough for another request."""
        seconds = self._waiting * self._job_seconds
        return max(1, min(600, math.ceil(seconds)))

    async def wait_started(self, jobs: list[Job], deadline: float | None) -> None:
        """Returns once every job's batch has started; 503 when `deadline` (loop time) comes
        first, with the jobs that had not started dropped."""
        loop = asyncio.get_running_loop()
        pending = [job.started for job in jobs if job.started is not None]
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        _, late = await asyncio.wait(pending, timeout=timeout)
        if late and any(job.claim("expired") for job in jobs):
            cancel(jobs)
            raise APIError(
                503,
                "The request waited past serve.request_timeout_s before generation started; "
                "retry later.",
                code="timeout",
                retry_after=self.retry_after(),
            )
        await asyncio.gather(*pending)  # the worker took them all just in time

    async def results(self, jobs: list[Job]) -> list[Generation]:
        """The generations of non-streaming jobs, in order."""
        # return_exceptions: every future's outcome is retrieved (a failed batch fails all of
        # them), then the first failure is raised.
        outcomes = await asyncio.gather(
            *(job.future for job in jobs if job.future), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return list(outcomes)  # type: ignore[arg-type]

    async def pieces(self, job: Job) -> AsyncIterator[str | Generation]:
        """A streaming job's text pieces as they are generated, then its Generation."""
        assert job.events is not None
        try:
            while True:
                item = await job.events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Generation):
                    return
        finally:  # the client went away or the stream ended: stop generating for it
            job.cancelled.set()

    # --- the worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        if supports_continuous(self._pool.model):
            self._run_continuous()
        else:
            self._run_batches()
        self._fail_pending()

    # continuous batching: rows join and leave between decoding steps

    def _run_continuous(self) -> None:
        live: _Live | None = None
        trimmed = time.monotonic()
        while True:
            if time.monotonic() - trimmed > _TRIM_EVERY_S:
                _release_free_memory()
                trimmed = time.monotonic()
            self._collect(block=live is None)
            if self._stopping:
                if live is not None:
                    live.fail(APIError(503, "The server is shutting down."))
                    live.close()
                return
            if live is None:
                if not self._pending:
                    continue
                live = _Live(self._pool, self._pending[0].entry)
            try:
                self._admit(live)
                if live.batch.rows:
                    self._choose(live, live.batch.step(), 0)
            except Exception as exc:  # a failed step fails its requests, not the server
                logger.exception("generation failed")
                live.fail(_failure(exc))
            if not live.batch.rows and not self._admissible(live):
                live.close()
                live = None

    def _collect(self, block: bool) -> None:
        """Moves what arrived to `_pending`; `block`: first wait for something, if nothing is
        pending."""
        if block and not self._pending and not self._stopping:
            self._take(self._inbox.get())
        while not self._stopping:
            try:
                self._take(self._inbox.get_nowait())
            except queue.Empty:
                break

    def _admissible(self, live: _Live) -> bool:
        """Whether the oldest waiting job can join `live` (one adapter per batch; a job for
        another waits for this batch to drain rather than be overtaken)."""
        return bool(self._pending) and self._pending[0].entry.model_id == live.entry.model_id

    def _admit(self, live: _Live) -> None:
        room = self._batch_size - len(live.batch.rows)
        if room <= 0 or not self._admissible(live):
            return
        # Each admission is a prefill forward beside the step's own: admitting a row or two at
        # every step doubled the forwards. While the batch is busy, wait until half of it
        # is free or the oldest request has waited _ADMIT_WAIT_S, then prefill them together.
        waited = time.perf_counter() - self._pending[0].created
        if live.batch.rows and room < self._batch_size // 2 and waited < _ADMIT_WAIT_S:
            return
        taken: list[Job] = []
        while self._pending and len(taken) < room and self._admissible(live):
            taken.append(self._pending.popleft())
        self._left_queue(len(taken))
        jobs = [job for job in taken if job.claim("running")]
        if not jobs:
            return
        for job in jobs:
            job.push(_STARTED)
        entry = live.entry
        slots = [
            _Slot(job, Row(_row_spec(job), entry.tokenizer, entry.stop_ids), _sampler(job))
            for job in jobs
        ]
        before = len(live.batch.rows)
        try:
            scores = live.batch.admit(slots, [job.prompt for job in jobs])
        except Exception as exc:  # the running rows are fine; these never joined
            logger.exception("prefill failed")
            for job in jobs:
                job.push(_failure(exc))
            return
        self._metrics.batch_size.observe(len(live.batch.rows))
        self._choose(live, scores, before)

    def _choose(self, live: _Live, scores: Any, first: int) -> None:
        """Picks the next token of rows `first`.. from `scores` (one row each); ended rows are
        answered and leave the batch."""
        batch = live.batch
        keep = list(range(first))
        self._count_tokens(len(batch.rows) - first)
        for index in range(first, len(batch.rows)):
            slot: _Slot = batch.rows[index]
            row_scores = scores[index - first]
            slot.row.mask(row_scores)
            token = slot.sampler.choose(row_scores)
            result = slot.row.advance(token)
            if result is None:
                batch.set_next(index, token)
                keep.append(index)
            else:
                self._answer(slot.job, result, live.entry)
        batch.keep(keep)

    def _answer(self, job: Job, result: RowResult, entry: Entry) -> None:
        logprobs = None
        if job.params.top_logprobs is not None:
            scored = _scored_ids(result.token_ids, entry.stop_ids)
            try:
                logprobs = token_logprobs(
                    self._pool.model, entry.tokenizer, job.prompt, scored, job.params.top_logprobs
                )
            except Exception as exc:  # this answer fails; the batch goes on
                logger.exception("scoring logprobs failed")
                job.push(_failure(exc))
                return
        job.push(_generation(job, result, logprobs))
        seconds = time.perf_counter() - job.created
        # Smoothed seconds per answer, for Retry-After: one slow answer should not make every
        # client wait minutes.
        rows = max(1, self._batch_size)
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * seconds / rows

    def _count_tokens(self, tokens: int) -> None:
        """Feeds the tokens/s gauge: the rate over the current window of up to a second."""
        now = time.perf_counter()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_tokens = now, 0
        self._window_tokens += tokens
        elapsed = max(now - self._window_start, 1e-3)
        self._metrics.tokens_per_second.set(self._window_tokens / elapsed)

    # batch at a time, through model.generate (models whose cache the loop cannot merge)

    def _run_batches(self) -> None:
        while (batch := self._next_batch()) is not None:
            batch = [job for job in batch if job.claim("running")]
            if not batch:
                continue
            self._metrics.batch_size.observe(len(batch))
            try:
                self._run_batch(batch)
            except Exception as exc:  # a failed batch fails its requests, not the server
                logger.exception("generation failed")
                for job in batch:
                    job.push(_failure(exc))

    def _next_batch(self) -> list[Job] | None:
        """The oldest waiting job and up to batch_size - 1 later ones that can share its batch;
        None when stopping."""
        self._collect(block=True)
        if self._stopping or not self._pending:
            return None
        first = self._pending.popleft()
        batch, rest = [first], deque()
        for job in self._pending:
            fits = job.key == first.key
            (batch if fits and len(batch) < self._batch_size else rest).append(job)
        self._pending = rest
        self._left_queue(len(batch))
        return batch

    def _take(self, item: Job | None) -> None:
        if item is None:
            self._stopping = True
        else:
            self._pending.append(item)

    def _left_queue(self, count: int) -> None:
        with self._count_lock:
            self._waiting -= count
        self._metrics.queue_depth.dec(count)

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
        self._left_queue(len(self._pending))
        self._pending.clear()

    def _run_batch(self, batch: list[Job]) -> None:
        entry, started = batch[0].entry, time.perf_counter()
        for job in batch:
            job.push(_STARTED)
        deferred: list[tuple[Job, Any]] = []  # jobs waiting for their logprobs

        def finished(index: int, result: Any) -> None:
            job = batch[index]
            if job.params.top_logprobs is None:
                job.push(_generation(job, result))
            else:
                deferred.append((job, result))

        prompts = [job.prompt for job in batch]
        row_list = [Row(_row_spec(job), entry.tokenizer, entry.stop_ids) for job in batch]
        rows = Rows(row_list, max(map(len, prompts)), finished)
        decoding, warpers = _batch_decoding(batch)
        with self._pool.active(entry):
            generate_batch(
                self._pool.model,
                entry.tokenizer,
                prompts,
                decoding,
                logits_processor=LogitsProcessorList([rows.logits_processor(), *warpers]),
                stopping_criteria=StoppingCriteriaList([rows.stopping_criterion()]),
            )
            rows.finish_rest()
            for job, result in deferred:
                scored = _scored_ids(result.token_ids, entry.stop_ids)
                logprobs = token_logprobs(
                    self._pool.model, entry.tokenizer, job.prompt, scored, job.params.top_logprobs
                )
                job.push(_generation(job, result, logprobs))
        self._record_speed(row_list, len(batch), time.perf_counter() - started)

    def _record_speed(self, rows: list[Row], jobs: int, seconds: float) -> None:
        if seconds <= 0:
            return
        tokens = sum(len(r.tokens) for r in rows)
        self._metrics.tokens_per_second.set(tokens / seconds)
        # Smoothed: one slow batch should not make every client wait minutes.
        self._job_seconds = 0.7 * self._job_seconds + 0.3 * seconds / jobs


@dataclass
class _Slot:
    """A running job in the continuous batch."""

    job: Job
    row: Row
    sampler: Sampler


class _Live:
    """The running batch and the adapter it decodes with (entered until the batch drains)."""

    def __init__(self, pool: ModelPool, entry: Entry) -> None:
        tokenizer = entry.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.entry = entry
        self.batch = RunningBatch(pool.model, pad)
        self._context = pool.active(entry)
        self._context.__enter__()

    def fail(self, error: APIError) -> None:
        for slot in self.batch.rows:
            if slot.row.result is None:
                slot.job.push(error)
        self.batch.keep([])

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def _failure(exc: Exception) -> APIError:
    # As an APIError the route answers a plain 500; an unhandled exception would also make
    # uvicorn drop the client's keep-alive connection. The exception's message is not sent: it
    # may quote the request.
    return APIError(500, f"generation failed ({type(exc).__name__}); see the server log")


def _sampler(job: Job) -> Sampler:
    decoding, seed = job.params.decoding, job.params.seed
    if seed is not None:
        seed += job.choice  # stays within torch's range: seeds are < 2**63, choices < 2**7
    return Sampler(decoding.do_sample, decoding.temperature, decoding.top_p, seed)


def cancel(jobs: list[Job]) -> None:
    """Stops generating for `jobs` (a waiting job is skipped, a running row ends next step)."""
    for job in jobs:
        job.cancelled.set()


def _row_spec(job: Job) -> RowSpec:
    params = job.params
    emit = job.push if job.events is not None else None
    return RowSpec(params.decoding.max_new_tokens, params.stop, params.grammar, emit, job.cancelled)


def _batch_decoding(batch: list[Job]) -> tuple[Decoding, list[Any]]:
    """The batch's decoding for `generate` and the sampling warpers to run after the grammar
    masks (generate would run its own first, and top-p could then keep only tokens the grammar
    forbids)."""
    first = batch[0]
    decoding = dataclasses.replace(
        first.params.decoding,
        max_new_tokens=max(job.params.decoding.max_new_tokens for job in batch),
    )
    if decoding.do_sample and first.params.seed is None:
        # A fresh seed per batch, else every unseeded request would draw the same numbers.
        decoding = dataclasses.replace(decoding, seed=random.randrange(2**31))
    if not decoding.do_sample:
        return decoding, []
    warpers: list[Any] = []
    if decoding.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(decoding.temperature))
    if decoding.top_p < 1.0:
        warpers.append(TopPLogitsWarper(decoding.top_p))
    return dataclasses.replace(decoding, temperature=1.0, top_p=1.0), warpers


def _generation(job: Job, result: Any, logprobs: list[TokenLogprob] | None = None) -> Generation:
    finish = "length" if result.finish_reason == "cancelled" else result.finish_reason
    if job.params.top_logprobs is not None and logprobs is None:
        logprobs = []
    return Generation(result.text, len(result.token_ids), finish, logprobs)


def _scored_ids(token_ids: list[int], stop_ids: frozenset[int]) -> list[int]:
    """The tokens logprobs are reported for: all but a closing end-of-turn token."""
    return token_ids[:-1] if token_ids and token_ids[-1] in stop_ids else token_ids
