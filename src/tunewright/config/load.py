"""Reading a config: YAML file, `key.sub=value` overrides, validation, and the resolved copy
(secrets redacted) that runs save and hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunewright.config.messages import describe_errors, kind_of
from tunewright.config.peers.detect import foreign_peer, import_command
from tunewright.config.schema import Config
from tunewright.config.secrets import secret_paths
from tunewright.errors import ConfigError


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when `path` is None), apply `key.sub=value` overrides,
    and validate it. Raises ConfigError listing every problem, each with its key path."""
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        raw = _read_yaml(path)
        base_dir = path.resolve().parent
        _refuse_foreign(path, raw)
    problems: list[str] = []
    for item in overrides or []:
        problem = _apply_override(raw, item)
        if problem:
            problems.append(problem)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(describe_errors(exc))
        config = None
    if problems:
        raise ConfigError(
            source,
            problems,
            hint="Fix the keys above; `tunewright init` writes a documented starter config.",
        )
    assert config is not None
    config.base_dir = base_dir
    return config


def _refuse_foreign(path: Path, raw: dict[str, Any]) -> None:
    """A LLaMA-Factory or Axolotl config would fail on every key; say what it is instead."""
    peer = foreign_peer(raw)
    if peer is not None:
        raise ConfigError(
            str(path),
            [f"this is {'an' if peer[0] in 'AEIOU' else 'a'} {peer} config, not a tunewright one"],
            hint=f"Translate it (every key, with a table of what became of each): "
            f"{import_command(path)}",
        )


def secrets_in_file(path: str | Path) -> list[str]:
    """Key paths in the YAML file at `path` whose values look like secrets (config.secrets)."""
    return secret_paths(_read_yaml(Path(path)))


def _read_yaml(path: Path) -> dict[str, Any]:
    from tunewright.errors import InputFileError

    if not path.is_file():
        raise InputFileError(
            f"config file not found: {path}", hint="Create one with `tunewright init config.yaml`."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(where, [f"invalid YAML: {reason}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), [f"top level must be a mapping of sections, got {kind_of(data)}"]
        )
    return data


def _apply_override(raw: dict[str, Any], item: str) -> str | None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        return f"override {item!r}: expected key.sub=value"
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return f"override {item!r}: {part} is not a section"
        node = child
    node[parts[-1]] = value
    return None


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain data, with secrets redacted."""
    data = config.model_dump(mode="json")
    if data["serve"]["api_keys"]:
        data["serve"]["api_keys"] = ["<redacted>"] * len(data["serve"]["api_keys"])
    if data["serve"].get("metrics_key"):
        data["serve"]["metrics_key"] = "<redacted>"
    return data


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)


def config_hash(config: Config) -> str:
    text = json.dumps(config_to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
