"""`tunewright import-config`: read a LLaMA-Factory or Axolotl YAML, translate every key, check
the result against our schema, and write it as commented YAML."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from tunewright.config.messages import describe_errors
from tunewright.config.peers import axolotl, llamafactory
from tunewright.config.peers.detect import AXOLOTL, LLAMA_FACTORY, foreign_peer
from tunewright.config.peers.translation import Translation, commented_yaml
from tunewright.config.schema import Config
from tunewright.errors import ConfigError, InputFileError
from tunewright.files import atomic_write_text

TRANSLATORS = {LLAMA_FACTORY: llamafactory.translate, AXOLOTL: axolotl.translate}


def translate_file(source: Path, out: Path, base: Path | None = None) -> Translation:
    """The translation of the peer config at `source`, for a config to be written at `out`;
    relative paths in it are looked up under `base` (default: the current folder), then beside
    `source`. Raises ConfigError when the source is no peer config, or the result is invalid."""
    raw = _read(source)
    peer = foreign_peer(raw)
    if peer is None:
        raise ConfigError(
            str(source),
            ["not a LLaMA-Factory or Axolotl config (none of their top-level keys)"],
            hint="`tunewright validate` checks a tunewright config.",
        )
    translation = Translation(peer, source, out.parent, (base or Path.cwd()).resolve())
    TRANSLATORS[peer](raw, translation)
    try:
        Config.model_validate(translation.config)
    except ValidationError as exc:
        problems = [_with_source(p, translation) for p in describe_errors(exc)]
        raise ConfigError(
            f"{source} imported",
            problems,
            hint="Fix these values in the source config; nothing was written.",
        ) from None
    return translation


def write_translation(translation: Translation, out: Path) -> list[Path]:
    """Write the config and the files it refers to (a chat template); returns their paths."""
    written = []
    for name, text in translation.files.items():
        path = out.parent / name
        atomic_write_text(path, text)
        written.append(path)
    atomic_write_text(out, commented_yaml(translation))
    return [out, *written]


def _with_source(problem: str, translation: Translation) -> str:
    """A problem about one of our keys, naming the source key it came from."""
    key, sep, rest = problem.partition(": ")
    base = key.split("[")[0]
    source = translation.comments.get(base)
    return f"{key} (from {source}){sep}{rest}" if source and sep else problem


def _read(source: Path) -> dict:
    if not source.is_file():
        raise InputFileError(f"config file not found: {source}")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
        raise ConfigError(where, [f"invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(source), ["top level must be a mapping of keys"])
    return raw
