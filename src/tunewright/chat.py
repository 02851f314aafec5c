"""The one place that turns messages into prompt text and token ids.

Everything here goes through the tokenizer's own chat template (`apply_chat_template`): no
template is hand-written, so what we train on is what eval, export and serve will render.

Finding the tokens that carry loss works on the rendered *text*, for any template that renders
earlier turns the same way whatever follows them. For assistant message i:

    prompt = render(messages[:i], add_generation_prompt=True)  # ...<|im_start|>assistant\\n
    turn = render(messages[: i + 1])  # ...<|im_start|>assistant\\nHi<|im_end|>\\n
    full = render(messages)

`turn` must be a prefix of `full` (else the template rewrites history and we refuse), and the
answer is `turn[len(prompt):]` up to and including the first special token after the content:
the end-of-turn token (`<|im_end|>`, `<|eot_id|>`, `</s>` ...), without the newline after it.
Characters become tokens through the fast tokenizer's offset mapping on `full`, so the ids are
exactly the tokenization of the full text. Templates write their own special tokens (BOS, role
markers), so text is tokenized with `add_special_tokens=False`.

Tool use: `tools` is passed to the template. A template that never mentions `tool_calls` would
drop them silently, so tool calls are then written as JSON after the assistant's content
(`[{"name": ..., "arguments": {...}}]`); likewise a template that never mentions `tools` gets the
tool schemas as JSON at the end of the system message (one is added when there is none).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunewright.errors import TunewrightError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Message = dict[str, Any]
IGNORE_INDEX = -100  # the label value HF losses skip
_SNIPPET = 60  # characters of text quoted in error messages


class ChatTemplateError(TunewrightError):
    """The tokenizer has no chat template, or the template fails on a conversation."""


class LossMaskError(TunewrightError):
    """The tokens that carry loss are not exactly the assistant answers."""


@dataclass
class Rendered:
    """One tokenized conversation.

    `labels` line up with `input_ids` (HF models shift them internally): a token id where loss
    is computed, `IGNORE_INDEX` elsewhere. `assistant_spans` are the [start, end) token ranges
    of every assistant answer plus its end-of-turn token, `weight: 0` turns included (they are
    simply not labelled). After truncation the spans are clipped and `full_length` keeps the
    untruncated length.
    """

    input_ids: list[int]
    labels: list[int]
    assistant_spans: list[tuple[int, int]]
    full_length: int


def render_example(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    *,
    tools: list[Any] | None = None,
    train_on_prompt: bool = False,
    max_seq_len: int | None = None,
) -> Rendered:
    """Tokenize a conversation and label its assistant answers (everything: `train_on_prompt`).

    Raises `LossMaskError` when the template cannot separate assistant turns.
    """
    _require_fast(tokenizer)
    prepared, template_tools = _prepare_messages(tokenizer, messages, tools)
    full = _render(tokenizer, prepared, template_tools, generation=False)
    encoding = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    offsets = encoding["offset_mapping"]

    trained = [m.get("weight", 1) != 0 for m in messages if m.get("role") == "assistant"]
    char_spans = _assistant_char_spans(tokenizer, prepared, template_tools, full)
    spans = [_token_range(offsets, start, end) for start, end in char_spans]
    # A single example has no padding, so with train_on_prompt every token carries loss. Never
    # mask by pad id: SmolLM2's pad token is its end-of-turn token.
    labels = list(input_ids) if train_on_prompt else [IGNORE_INDEX] * len(input_ids)
    for (first, last), is_trained in zip(spans, trained, strict=True):
        if is_trained:
            labels[first:last] = input_ids[first:last]
    return _truncate(Rendered(input_ids, labels, spans, len(input_ids)), max_seq_len)


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    *,
    tools: list[Any] | None = None,
) -> list[int]:
    """Token ids of all `messages` followed by the generation prompt, ready for `generate`."""
    prepared, template_tools = _prepare_messages(tokenizer, messages, tools)
    text = _render(tokenizer, prepared, template_tools, generation=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def token_lengths(
    tokenizer: PreTrainedTokenizerBase,
    batch: list[list[Message]],
    *,
    tools: list[list[Any] | None] | None = None,
) -> list[int]:
    """Full rendered length of each conversation (`tools`: one schema list or None per example).

    Equals `len(render_example(...).input_ids)`, but renders text only and tokenizes the whole
    batch in one call, so validating thousands of examples takes seconds.
    """
    texts = []
    for index, messages in enumerate(batch):
        prepared, template_tools = _prepare_messages(
            tokenizer, messages, tools[index] if tools else None
        )
        texts.append(_render(tokenizer, prepared, template_tools, generation=False))
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]


def rendered_text(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], tools: list[Any] | None = None
) -> str:
    """The full text the template renders for `messages` (no generation prompt)."""
    prepared, template_tools = _prepare_messages(tokenizer, messages, tools)
    return _render(tokenizer, prepared, template_tools, generation=False)


def verify_loss_mask(
    tokenizer: PreTrainedTokenizerBase,
    samples: list[list[Message]],
    *,
    tools: list[list[Any] | None] | None = None,
) -> None:
    """Check that the labelled tokens of each sample are exactly its trained assistant answers.

    Each contiguous run of labelled tokens must decode to one assistant content (whitespace at
    its ends aside) followed by one special end-of-turn token, and there must be one run per
    assistant turn without `weight: 0`, so no system, user or tool text is labelled. For tool
    calls the template renders itself, the run must contain the content and every tool name.
    Raises `LossMaskError` listing every problem found.
    """
    specials = _special_strings(tokenizer)
    problems: list[str] = []
    for index, messages in enumerate(samples):
        sample_tools = tools[index] if tools else None
        rendered = render_example(tokenizer, messages, tools=sample_tools)
        prepared, _ = _prepare_messages(tokenizer, messages, sample_tools)
        # The tool-schema fallback may put a system message first; the rest align with messages.
        aligned = prepared[len(prepared) - len(messages) :]
        expected = [
            p
            for m, p in zip(messages, aligned, strict=True)
            if m.get("role") == "assistant" and m.get("weight", 1) != 0
        ]
        runs = [
            _decode(tokenizer, rendered.input_ids[first:last])
            for first, last in _labelled_runs(rendered.labels)
        ]
        problems += [f"sample {index}: {p}" for p in _compare_runs(runs, expected, specials)]
    if problems:
        raise LossMaskError(
            f"{len(problems)} loss-mask problem(s):\n" + "\n".join(f"  - {p}" for p in problems),
            hint="Set `model.chat_template` to a template that ends every assistant turn with a "
            "special end-of-turn token and renders the content unchanged (ChatML does).",
        )


def render_markup(tokenizer: PreTrainedTokenizerBase, rendered: Rendered) -> str:
    """Rich markup of a rendered example for a terminal.

    Tokens that carry loss are green and underlined, the rest dim; special tokens show as their
    text; backgrounds alternate per token so boundaries are visible, and newlines show as `↵`.
    Tokens that hold only part of a UTF-8 character share one box with the rest of it. Print it
    with `Console.print(markup, highlight=False)` so rich does not recolour `<|...|>` tokens.
    """
    from rich.markup import escape

    parts = []
    for box, (text, loss) in enumerate(token_boxes(tokenizer, rendered)):
        style = "green underline" if loss else "dim"
        # Every other token on grey, the rest on the terminal's own background: still two
        # distinct shades when rich falls back to 16 colours.
        if box % 2:
            style += " on grey27"
        shown = escape(text.replace("\n", "↵").replace("\t", "→"))
        parts.append(f"[{style}]{shown}[/]" + "\n" * text.count("\n"))
    return "".join(parts)


def token_boxes(tokenizer: PreTrainedTokenizerBase, rendered: Rendered) -> list[tuple[str, bool]]:
    """A rendered example as (text, carries loss) per token; tokens holding only part of a
    UTF-8 character share one box with the rest of it. What `render_markup` and the web UI
    both draw."""
    return [
        (_decode(tokenizer, rendered.input_ids[first:last]), rendered.labels[first] != IGNORE_INDEX)
        for first, last in _readable_groups(tokenizer, rendered.input_ids)
    ]


# --- rendering -------------------------------------------------------------------------------


def _render(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    tools: list[Any] | None,
    *,
    generation: bool,
) -> str:
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation
        )
    except TemplateError as exc:
        roles = ", ".join(str(m.get("role")) for m in messages)
        raise ChatTemplateError(
            f"the chat template failed on a conversation with roles [{roles}]: {exc}",
            hint="Fix the conversation, or set `model.chat_template` to a template that "
            "accepts it.",
        ) from exc
    assert isinstance(text, str), f"apply_chat_template(tokenize=False) gave {type(text)}"
    return text


def _prepare_messages(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], tools: list[Any] | None
) -> tuple[list[Message], list[Any] | None]:
    """Messages as the template should see them, and the tools to pass it (see module doc)."""
    source = _template_source(tokenizer, tools)
    native_calls = "tool_calls" in source
    prepared = [_template_message(m, native_calls) for m in messages]
    if tools and "tools" not in source:
        return _with_tool_schemas(prepared, tools), None
    return prepared, tools


def _template_source(tokenizer: PreTrainedTokenizerBase, tools: list[Any] | None) -> str:
    try:
        return tokenizer.get_chat_template(None, tools)
    except ValueError as exc:  # no template, or several and none named "default"
        raise ChatTemplateError(
            f"the tokenizer has no usable chat template: {exc}",
            hint="Set `model.chat_template` to a Jinja chat template file.",
        ) from exc


def _template_message(message: Message, native_calls: bool) -> Message:
    # `weight` is ours, not the template's; templates concatenate content, so None becomes "".
    out = {key: value for key, value in message.items() if key != "weight"}
    out["content"] = message.get("content") or ""
    if message.get("tool_calls") and not native_calls:
        calls = json.dumps([_call_object(c) for c in out.pop("tool_calls")], ensure_ascii=False)
        out["content"] = f"{out['content']}\n{calls}" if out["content"] else calls
    return out


def _call_object(call: dict[str, Any]) -> dict[str, Any]:
    """{"name", "arguments"} of an OpenAI tool call, with JSON-string arguments parsed."""
    function = call.get("function", call)
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        # Invalid JSON stays a string: the model should still learn to write what was given.
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    return {"name": function.get("name"), "arguments": arguments}


def _with_tool_schemas(messages: list[Message], tools: list[Any]) -> list[Message]:
    schemas = "You can call these tools:\n" + json.dumps(tools, ensure_ascii=False)
    if messages and messages[0].get("role") == "system":
        system = messages[0]
        content = f"{system['content']}\n\n{schemas}" if system["content"] else schemas
        return [{**system, "content": content}, *messages[1:]]
    return [{"role": "system", "content": schemas}, *messages]


# --- finding the assistant answers -----------------------------------------------------------


def _assistant_char_spans(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    tools: list[Any] | None,
    full: str,
) -> list[tuple[int, int]]:
    """[start, end) character ranges in `full` of each assistant answer + end-of-turn token."""
    specials = _special_strings(tokenizer)
    spans = []
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        turn = _render(tokenizer, messages[: index + 1], tools, generation=False)
        if not full.startswith(turn):
            raise _history_error(index, len(messages), turn, full)
        start = _answer_start(tokenizer, messages[:index], tools, turn)
        end = _answer_end(turn, start, message["content"], specials)
        spans.append((start, end))
    return spans


def _answer_start(
    tokenizer: PreTrainedTokenizerBase,
    history: list[Message],
    tools: list[Any] | None,
    turn: str,
) -> int:
    if history:
        prompt = _render(tokenizer, history, tools, generation=True)
        if turn.startswith(prompt):
            return len(prompt)
    # An opening assistant turn (plain `text` records) has no history to render: transformers
    # refuses empty conversations, and SmolLM2-style templates would skip their default system
    # prompt anyway. So find the generation header (`<|im_start|>assistant\n`), learnt from a
    # probe conversation, in the turn; all text before it is prompt.
    probe = history or [{"role": "user", "content": ""}]
    prompt = _render(tokenizer, probe, tools, generation=True)
    bare = _render(tokenizer, probe, tools, generation=False)
    header = prompt[len(bare) :] if prompt.startswith(bare) else ""
    at = turn.rfind(header) if header else -1
    if at < 0:
        raise LossMaskError(
            "cannot find where the assistant answer starts: the chat template's generation "
            f"prompt {prompt[-_SNIPPET:]!r} does not appear before the answer.",
            hint="Set `model.chat_template` to a template whose `add_generation_prompt` output "
            "is exactly what precedes each assistant message.",
        )
    return at + len(header)


def _answer_end(turn: str, start: int, content: str, specials: list[str]) -> int:
    """End of the first special token after the content; the rest (a newline) is not trained."""
    body = content.strip()
    at = turn.find(body, start) if body else -1
    search_from = at + len(body) if at >= 0 else start
    hits = [(turn.find(s, search_from), -len(s)) for s in specials]
    hits = [(pos, neg_len) for pos, neg_len in hits if pos >= 0]
    if not hits:
        # No end-of-turn token: train on all the template wrote for this turn but trailing
        # whitespace. verify_loss_mask reports this, since the model would never learn to stop.
        return max(start, len(turn.rstrip()))
    pos, neg_len = min(hits)  # earliest; at a tie, the longest token
    return pos - neg_len


def _special_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    added = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    return sorted(set(added) | set(tokenizer.all_special_tokens))


def _history_error(index: int, count: int, turn: str, full: str) -> LossMaskError:
    shorter = min(len(turn), len(full))
    at = next((k for k in range(shorter) if turn[k] != full[k]), shorter)
    return LossMaskError(
        f"the chat template renders earlier turns differently once later messages follow "
        f"(first seen at message {index + 1} of {count}, character {at}: "
        f"{turn[at : at + _SNIPPET]!r} alone vs {full[at : at + _SNIPPET]!r} in the full "
        "conversation), so assistant turns cannot be separated for the loss mask.",
        hint="Set `model.chat_template` to a template that renders each turn independently of "
        "what follows it (ChatML does), or split conversations into single-turn examples.",
    )


# --- tokens ----------------------------------------------------------------------------------


def _require_fast(tokenizer: PreTrainedTokenizerBase) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ChatTemplateError(
            f"{type(tokenizer).__name__} is a slow tokenizer; the loss mask needs a fast one "
            "(character offsets).",
            hint="Use a model folder that has a tokenizer.json.",
        )


def _token_range(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """[first, last) of the tokens overlapping characters [start, end).

    A token that straddles a boundary holds answer text, so it is part of the answer.
    """
    inside = [k for k, (a, b) in enumerate(offsets) if a < end and b > start]
    if not inside:
        at = next((k for k, (a, _) in enumerate(offsets) if a >= start), len(offsets))
        return at, at
    return inside[0], inside[-1] + 1


def _truncate(rendered: Rendered, max_seq_len: int | None) -> Rendered:
    if max_seq_len is None or rendered.full_length <= max_seq_len:
        return rendered
    spans = [(s, min(e, max_seq_len)) for s, e in rendered.assistant_spans if s < max_seq_len]
    return Rendered(
        rendered.input_ids[:max_seq_len],
        rendered.labels[:max_seq_len],
        spans,
        rendered.full_length,
    )


def _labelled_runs(labels: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for k, label in enumerate(labels):
        if label == IGNORE_INDEX:
            continue
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    return runs


def _compare_runs(runs: list[str], expected: list[Message], specials: list[str]) -> list[str]:
    """Problems with the labelled `runs` given the trained assistant messages `expected`."""
    if len(runs) != len(expected):
        return [
            f"{len(runs)} labelled span(s) for {len(expected)} trained assistant turn(s); "
            f"labelled: {[r[:_SNIPPET] for r in runs]!r}"
        ]
    problems = []
    for number, (run, message) in enumerate(zip(runs, expected, strict=True), start=1):
        end_token = next((s for s in specials if run.endswith(s)), None)
        body = run[: len(run) - len(end_token)] if end_token else run
        content = message["content"].strip()
        names = [_call_object(c)["name"] for c in message.get("tool_calls") or []]
        if message.get("tool_calls"):  # rendered by the template: check content and names
            ok = content in body and all(str(n) in body for n in names)
        else:
            ok = body.strip() == content
        if end_token is None:
            problems.append(f"assistant turn {number} has no end-of-turn token: {run[-40:]!r}")
        elif not ok:
            problems.append(
                f"assistant turn {number}: labelled {body[:_SNIPPET]!r}, expected "
                f"{content[:_SNIPPET]!r} + an end-of-turn token"
            )
    return problems


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    # No clean-up of spaces: the text must be exactly what the tokens spell.
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _readable_groups(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[tuple[int, int]]:
    """[first, last) token groups that decode to whole characters (usually one token each)."""
    groups = []
    first = 0
    for k in range(len(ids)):
        text = _decode(tokenizer, ids[first : k + 1])
        if not text.endswith("\ufffd") or k == len(ids) - 1:
            groups.append((first, k + 1))
            first = k + 1
    return groups
