"""Constrained decoding: the grammars a served output must follow, enforced by llguidance.

llguidance (a maintained library, a small native wheel with no GPU stack) turns a JSON schema or
a Lark grammar into a token mask per decoding step; `rows.Rows` applies the masks. Three uses:
`response_format` `json_object` (any JSON object) and `json_schema` (that schema), and a forced
tool call (`tool_choice: "required"` or a named function), which must be one Hermes-format call
`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` to an allowed function.
Whitespace inside JSON is not free: a weak model could otherwise spend its budget on blank lines.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from tunewright.serving.errors import bad_request
from tunewright.serving.pool import Entry

CALL_OPEN, CALL_CLOSE = "<tool_call>\n", "\n</tool_call>"
_COMPACT = {"whitespace_flexible": False}
_tokenizers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class Constraint:
    """A checked grammar and the llguidance tokenizer it runs with."""

    grammar: str
    tokenizer: Any
    vocab_size: int

    def matcher(self) -> Any:
        import llguidance

        return llguidance.LLMatcher(self.tokenizer, self.grammar, log_level=0)


def json_object_grammar(entry: Entry) -> Constraint:
    # JSON mode's output is an object (OpenAI's json_object), not any JSON value.
    return json_schema_grammar(entry, {"type": "object"}, "response_format")


def json_schema_grammar(
    entry: Entry, schema: dict[str, Any], param: str = "response_format.json_schema.schema"
) -> Constraint:
    import llguidance

    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=_COMPACT)
    except ValueError:
        grammar = ""
    return _checked(entry, grammar, param)


def tool_call_grammar(entry: Entry, functions: list[dict[str, Any]]) -> Constraint:
    """One Hermes tool call to one of `functions` (OpenAI function specs)."""
    import llguidance

    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": f["name"]},
                "arguments": f.get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in functions
    ]
    schema = {**(calls[0] if len(calls) == 1 else {"anyOf": calls}), "x-guidance": _COMPACT}
    lark = (
        f"start: {json.dumps(CALL_OPEN)} call {json.dumps(CALL_CLOSE)}\n"
        f"call: %json {json.dumps(schema)}\n"
    )
    return _checked(entry, llguidance.LLMatcher.grammar_from_lark(lark), "tools")


def _checked(entry: Entry, grammar: str, param: str) -> Constraint:
    import llguidance

    tokenizer = _tokenizer(entry)
    problem = (
        "invalid" if not grammar else llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
    )
    if problem:
        # The schema is not quoted back: errors never echo request content.
        raise bad_request(f"{param}: not a JSON schema this server can enforce", param=param)
    return Constraint(grammar, tokenizer, entry.vocab_size)


def _tokenizer(entry: Entry) -> Any:
    """One llguidance tokenizer per served tokenizer (building one takes ~1 s)."""
    import llguidance.hf

    with _lock:
        if entry.tokenizer not in _tokenizers:
            _tokenizers[entry.tokenizer] = llguidance.hf.from_tokenizer(
                entry.tokenizer,
                n_vocab=entry.vocab_size or None,
                eos_token=sorted(entry.stop_ids),
            )
        return _tokenizers[entry.tokenizer]
