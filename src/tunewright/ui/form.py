"""The new-run form: one field per config key (from the pydantic models, with each key's
description and default), and its values checked exactly as `tunewright validate` checks a file
with overrides (`load_config` + every stage's preflight), each problem shown at its key."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from tunewright.errors import ConfigError, TunewrightError

GENERAL = ""  # problems that name no key of the form


def schema_fields(model: type[BaseModel] | None = None, prefix: str = "") -> list[dict[str, Any]]:
    """Every key, depth first in declaration order: key path, section, default (as YAML),
    description, and the allowed values of a closed choice."""
    from tunewright.config import Config

    # doc.py walks the models the same way for `init` and the README reference
    from tunewright.config.doc import _default, _optional_section, _section_model

    fields: list[dict[str, Any]] = []
    for name, field in (model or Config).model_fields.items():
        if field.exclude:
            continue
        key = f"{prefix}{name}"
        section = _section_model(field)
        if section is not None:
            fields += schema_fields(section, key + ".")
            continue
        fields.append(
            {
                "key": key,
                "section": key.split(".")[0] if "." in key else "run",
                "default": _yaml(_default(field)),
                "description": field.description or "",
                "choices": _choices(field.annotation),
            }
        )
        optional = _optional_section(field)
        if optional is not None:  # off by default; its keys apply once it is set
            fields += schema_fields(optional, key + ".")
    return fields


def check(values: dict[str, str], folder: Path) -> tuple[Any, dict[str, list[str]]]:
    """(the Config or None, problems by form key) for the form's values: `key -> YAML text`,
    empty texts left at their defaults. `folder` is where the config file will be written:
    relative paths (data files) resolve there, as they will when it runs."""
    from tunewright.config import load_config
    from tunewright.pipeline import preflight_problems

    overrides = [f"{key}={text}" for key, text in values.items() if text.strip()]
    try:
        config = load_config(None, overrides)
    except ConfigError as exc:
        return None, by_key(exc.problems, values)
    config.base_dir = folder
    problems = preflight_problems(config)
    return (None if problems else config), by_key(problems, values)


def by_key(problems: list[str], values: dict[str, str]) -> dict[str, list[str]]:
    """`key.path: message` lines grouped under the form key they name (`data.train[0].path`
    belongs to `data.train`); the rest under GENERAL."""
    keys = {field["key"] for field in schema_fields()} | set(values)
    grouped: dict[str, list[str]] = {}
    for problem in problems:
        named, sep, message = problem.partition(": ")
        owner = _owner(named, keys) if sep else None
        if owner is None:
            grouped.setdefault(GENERAL, []).append(problem)
        else:
            grouped.setdefault(owner, []).append(message if named == owner else problem)
    return grouped


def config_yaml(values: dict[str, str]) -> str:
    """The keys the form set, nested, as the YAML file that gets written and run."""
    raw: dict[str, Any] = {}
    for key, text in values.items():
        if not text.strip():
            continue
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(text)
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def write_config(path: Path, text: str) -> None:
    """Write the form's config; an existing different file is the user's and stays."""
    from tunewright.files import atomic_write_text

    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise TunewrightError(
            f"{path} exists with other contents", hint="Choose another config file name."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def _owner(named: str, keys: set[str]) -> str | None:
    candidate = named.split("[")[0]
    while candidate:
        if candidate in keys:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return None


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _choices(annotation: Any) -> list[Any] | None:
    """The values of a closed choice (a Literal, or `Literal | None`), else None."""
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    members = typing.get_args(annotation)
    literals = [a for a in members if typing.get_origin(a) is Literal]
    if len(literals) == 1 and set(members) == {literals[0], type(None)}:
        return [*typing.get_args(literals[0]), None]
    return None
