"""What each row of a generation batch needs while it decodes, apart from the others.

`model.generate` decodes the whole batch with one set of settings; the rows of a served batch
come from different requests, so each keeps its own: a token limit (`max_tokens`), stop strings
(checked on the decoded text), a grammar (llguidance, for `response_format` and forced tool
calls), a stream to feed, and a flag its client sets by leaving. A `Row` takes one token at a
time and says when it has ended, so it serves the continuous-batching loop (`engine`) and, through
`Rows` (one logits processor and one stopping criterion), a plain `model.generate` batch alike;
either way a row's result is reported the moment it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import LogitsProcessor, StoppingCriteria


@dataclass(frozen=True)
class RowSpec:
    max_new_tokens: int
    stop: tuple[str, ...]
    grammar: Any | None  # a grammar.Constraint the output must follow
    emit: Callable[[str], None] | None  # a stream's text pieces; None: not streaming
    cancelled: threading.Event


@dataclass(frozen=True)
class RowResult:
    text: str  # stripped, cut before a stop string
    token_ids: list[int]  # the tokens counted as completion tokens
    finish_reason: str  # "stop", "length" or "cancelled"


class Row:
    """One generated choice while it decodes: its tokens so far, grammar and stream."""

    def __init__(self, spec: RowSpec, tokenizer: Any, stop_ids: frozenset[int]) -> None:
        self.spec = spec
        self.tokens: list[int] = []
        self.result: RowResult | None = None
        self._tokenizer = tokenizer
        self._stop_ids = stop_ids
        self._pieces = TextPieces(spec.emit, spec.stop) if spec.emit else None
        self._matcher = spec.grammar.matcher() if spec.grammar else None

    def mask(self, scores: Any) -> None:
        """Forbids, in this row's next-token scores (1-D), what its grammar does not allow."""
        if self._matcher is None or self.result is not None:
            return
        import torch

        # One bit per token, little-endian within each 32-bit word, so byte k holds tokens
        # 8k..8k+7 from the lowest bit up.
        bits = torch.frombuffer(bytearray(self._matcher.compute_bitmask()), dtype=torch.uint8)
        allowed = ((bits[:, None] >> torch.arange(8, dtype=torch.uint8)) & 1).flatten()
        width = min(scores.shape[-1], allowed.numel())
        scores[:width].masked_fill_(allowed[:width].to(scores.device) == 0, float("-inf"))
        scores[width:] = float("-inf")

    def advance(self, token: int) -> RowResult | None:
        """Takes the next token; the result once the row has ended."""
        spec = self.spec
        self.tokens.append(token)
        if self._matcher is not None and token not in self._stop_ids:
            self._matcher.consume_token(token)
        if token in self._stop_ids:
            return self._end("stop")
        text = self._decode() if spec.stop or spec.emit else None
        cut = first_stop(text, spec.stop) if text is not None else None
        if cut is not None:
            assert text is not None
            return self._end("stop", text[:cut])
        if len(self.tokens) >= spec.max_new_tokens:
            return self._end("length", text)
        if spec.cancelled.is_set():
            return self._end("cancelled", text)
        if self._pieces is not None:
            assert text is not None
            self._pieces.update(text, final=False)
        return None

    def end_early(self) -> RowResult:
        """Ends a row whose decoding stopped without its own end (a batch that stopped)."""
        return self.result or self._end("length")

    def _end(self, finish: str, text: str | None = None) -> RowResult:
        if text is None:
            text = self._decode()
        if self._pieces is not None:
            self._pieces.update(text, final=True)
        self.result = RowResult(text.strip(), list(self.tokens), finish)
        return self.result

    def _decode(self) -> str:
        return self._tokenizer.decode(self.tokens, skip_special_tokens=True)


class Rows:
    """The rows of one `model.generate` batch, behind one logits processor (the grammar masks)
    and one stopping criterion (each row's end)."""

    def __init__(
        self,
        rows: list[Row],
        prompt_width: int,
        on_finish: Callable[[int, RowResult], None],
    ) -> None:
        self.rows = rows
        self._width = prompt_width
        self._on_finish = on_finish

    def logits_processor(self) -> LogitsProcessor:
        return _GrammarMasks(self)

    def stopping_criterion(self) -> StoppingCriteria:
        return _RowEnds(self)

    def finish_rest(self) -> None:
        """Ends rows `generate` left without our criterion seeing their end (it should not)."""
        for index, row in enumerate(self.rows):
            if row.result is None:
                self._on_finish(index, row.end_early())

    def mask(self, scores: Any) -> Any:
        for index, row in enumerate(self.rows):
            row.mask(scores[index])
        return scores

    def step(self, input_ids: Any) -> list[bool]:
        last = input_ids[:, -1].tolist()
        for index, row in enumerate(self.rows):
            if row.result is None and (result := row.advance(last[index])) is not None:
                self._on_finish(index, result)
        return [row.result is not None for row in self.rows]


def first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Where the earliest stop string starts in `text`, if any does."""
    found = [at for stop in stops if (at := text.find(stop)) >= 0]
    return min(found) if found else None


class TextPieces:
    """Turns a row's growing decoded text into stream pieces that join to its final text.

    Held back until they are settled: text ending in an incomplete UTF-8 character, a tail that
    could be the start of a stop string, and whitespace at either end (the final text is
    stripped, so leading whitespace is dropped and trailing whitespace waits for more text).
    """

    def __init__(self, emit: Callable[[str], None], stops: tuple[str, ...] = ()) -> None:
        self._emit = emit
        self._stops = stops
        self._sent_chars = 0
        self._started = False
        self._held = ""

    def update(self, text: str, final: bool) -> None:
        if not final:
            if text.endswith("\ufffd"):
                return
            cut = first_stop(text, self._stops)
            if cut is not None:
                text = text[:cut]
            text = text[: len(text) - _stop_prefix_length(text, self._stops)]
        if len(text) > self._sent_chars:
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


def _stop_prefix_length(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that begins some stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-size:]):
                longest = size
                break
    return longest


class _GrammarMasks(LogitsProcessor):
    def __init__(self, rows: Rows) -> None:
        self._rows = rows

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self._rows.mask(scores)


class _RowEnds(StoppingCriteria):
    def __init__(self, rows: Rows) -> None:
        super().__init__()
        self._rows = rows

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = self._rows.step(input_ids)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
