"""Pydantic's validation errors as one readable line per YAML key, with "did you mean"."""

from __future__ import annotations

import difflib
import json
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from tunewright.config.schema import Config
from tunewright.config.secrets import holds_secret

# Names users bring from other tools, mapped to ours, for "did you mean".
_SYNONYMS = {
    "lr": "learning_rate",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "rank": "r",
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "model_name": "name",
    "max_length": "max_seq_len",
    "max_seq_length": "max_seq_len",
}

# Keys that gave way to newer ones: setting one fails with "use X" rather than being read, so one
# config never holds two settings of the same thing (the README's Config section lists them).
_REPLACED = {
    "openai.method": "train.objective",
    "openai.hyperparameters.beta": "train.preference.beta",
    "eval.general_probe": "eval.suites",
}
# An old value spelled the new key's way; a key not here keeps its value.
_REPLACED_VALUES: dict[str, dict[Any, str]] = {
    "openai.method": {"supervised": "sft", "dpo": "dpo"},
    "eval.general_probe": {True: "[builtin]", False: "[]"},
}


def describe_errors(exc: ValidationError) -> list[str]:
    """One readable line per key, `key.path: message (got value)`.

    A value that matches no member of a union (`int | 'auto'`) yields one error per member; they
    are merged into one line: `train.epochs: must be > 0 or 'auto' (got -2)`."""
    grouped: dict[str, tuple[list[str], str]] = {}
    for error in exc.errors():
        key, message, got = _describe_error(error)
        messages, _ = grouped.setdefault(key, ([], got))
        if message not in messages:
            messages.append(message)
    lines = []
    for key, (messages, got) in grouped.items():
        text = " or ".join(messages) + (f" (got {got})" if got else "")
        lines.append(f"{key}: {text}" if key else text)
    return lines


def _describe_error(error: Any) -> tuple[str, str, str]:
    """(key path, message, shown input or '') for one pydantic error."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, owner = _walk(loc[:-1])
        unknown = str(loc[-1])
        if (key := _join(parent, unknown)) in _REPLACED:
            return key, _use_instead(key, error.get("input")), ""
        known = list(owner.model_fields) if owner else []
        close = [_SYNONYMS[unknown]] if _SYNONYMS.get(unknown) in known else []
        close = close or difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        return _join(parent, unknown), f"unknown key{hint}", ""
    path, _ = _walk(loc)
    if kind == "missing":
        return path, "is required", ""
    value = error.get("input")
    # A key pasted under the wrong type (`serve.api_keys: sk-...`) must not be echoed back.
    shown = "a value that looks like a secret, not shown" if holds_secret(path, value) else None
    return path, _message(kind, error), shown or _show(value)


def _use_instead(key: str, value: Any) -> str:
    """`replaced; use train.objective: dpo`: the new key, with the old value where it carries."""
    new = _REPLACED[key]
    if key in _REPLACED_VALUES:
        value = _REPLACED_VALUES[key].get(value) if isinstance(value, (str, bool)) else None
    shown = f": {value}" if isinstance(value, (str, int, float)) else ""
    return f"replaced; use {new}{shown}"


def _message(kind: str, error: Any) -> str:
    ctx = error.get("ctx") or {}
    templates = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "literal_error": "must be one of {expected}",
        "string_pattern_mismatch": "must match {pattern}",
        "int_parsing": "must be an integer",
        "int_type": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping of keys",
        "model_attributes_type": "must be a mapping of keys",
        "string_type": "must be a string",
    }
    if kind in templates:
        text = templates[kind].format(**ctx)
        # A literal with one choice reads better as the bare value: "must be > 0 or 'auto'".
        if kind == "literal_error" and " or " not in text and "," not in text:
            text = text.removeprefix("must be one of ")
        return text
    msg = str(error["msg"]).removeprefix("Value error, ")
    return "must be " + msg.removeprefix("Input should be ") if msg.startswith("Input") else msg


def _walk(loc: tuple[Any, ...]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic error location into a YAML key path, dropping union-member tags.

    Returns the path and the model class found at its end (for "did you mean")."""
    parts: list[str] = []
    annotation: Any = Config
    for item in loc:
        model = _model_in(annotation)
        if model is not None and isinstance(item, str) and _field(model, item) is not None:
            parts.append(item)
            annotation = _field(model, item).annotation
        elif isinstance(item, str) and _tagged(annotation, item) is not None:
            annotation = _tagged(annotation, item)  # a discriminated union's member: walk into it
        elif isinstance(item, int) and _origin(annotation) in (list, tuple):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
            annotation = _args(annotation)[0] if _args(annotation) else Any
        elif _origin(annotation) is dict and isinstance(item, str):
            parts.append(item)
            annotation = _args(annotation)[1] if len(_args(annotation)) == 2 else Any
        # anything else is a union-member tag such as 'int' or "literal['auto']": skip it
    return ".".join(parts), _model_in(annotation)


def _field(model: type[BaseModel], key: str) -> Any:
    """A model's field by its YAML key: its alias where it has one (`schema`), else its name."""
    return next((f for name, f in model.model_fields.items() if (f.alias or name) == key), None)


def _tagged(annotation: Any, tag: str) -> Any:
    """The member of a discriminated union (`Annotated[A, Tag("a")] | ...`) tagged `tag`."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    for member in typing.get_args(annotation) if _is_union(annotation) else ():
        if typing.get_origin(member) is typing.Annotated:
            base, *meta = typing.get_args(member)
            if any(getattr(m, "tag", None) == tag for m in meta):
                return base
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in _args(annotation) if _is_union(annotation) else ():
        found = _model_in(arg)
        if found:
            return found
    return None


def _origin(annotation: Any) -> Any:
    if _is_union(annotation):
        for arg in _args(annotation):
            if typing.get_origin(arg) in (list, tuple, dict):
                return typing.get_origin(arg)
    return typing.get_origin(annotation)


def _args(annotation: Any) -> tuple[Any, ...]:
    if _is_union(annotation):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) in (list, tuple, dict):
                return typing.get_args(arg)
    return typing.get_args(annotation)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
