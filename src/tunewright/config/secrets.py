"""Secrets written into a config file, found by their shape and named by YAML key path.

A config gets copied, committed and pasted into issues, so keys belong in environment variables
(TUNEWRIGHT_API_KEYS, HF_TOKEN, OPENAI_API_KEY). What counts as a secret here:
- anything under `serve.api_keys` (the one key the schema accepts from a file);
- an OpenAI key (`sk-...`, `sk-proj-...`) or a Hugging Face token (`hf_...`) anywhere in a string;
- a long random-looking string (one piece, mixed case or digits, varied characters, not a path)
  under a key whose name holds key, token, secret or password.
Callers show the paths, never the values.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

SERVE_KEYS = "serve.api_keys"
# OpenAI keys are "sk-" (+ "proj-" etc.) and 40+ characters, HF tokens "hf_" and 34 letters; a
# tail mixing two of lower case, upper case and digits keeps names such as "sk-learn-demo" out.
_OPENAI_KEY = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}")
_HF_TOKEN = re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}")
_SECRET_NAME = re.compile(r"key|token|secret|password", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
MIN_LENGTH = 16  # characters; shorter values under a secret-like name are not flagged
MIN_ENTROPY = 3.0  # bits per character of the value's own letter counts; 32 hex digits: 3.2-4


def secret_paths(raw: Mapping[Any, Any]) -> list[str]:
    """YAML key paths (`serve.api_keys[0]`, `data.system_prompt`) in a raw config mapping whose
    values look like secrets, in file order. Pure: reads nothing and prints nothing."""
    return [path for path, value in _leaves(raw, "") if _is_secret(path, value)]


def holds_secret(path: str, value: Any) -> bool:
    """Whether `value` at key `path` is, or contains, something that looks like a secret."""
    return any(_is_secret(p, v) for p, v in _leaves(value, path))


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, scalar) for every scalar under `value`; list items as `key[i]`."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _is_secret(path: str, value: Any) -> bool:
    if path == SERVE_KEYS or path.startswith(f"{SERVE_KEYS}["):
        return value not in (None, "")
    if not isinstance(value, str):
        return False
    if any(
        _mixed(m.group()[3:]) for m in (*_OPENAI_KEY.finditer(value), *_HF_TOKEN.finditer(value))
    ):
        return True
    names = re.sub(r"\[\d+\]", "", path).split(".")
    if not any(_SECRET_NAME.search(name) for name in names):
        return False
    if names[-1].endswith("_env") and _ENV_NAME.fullmatch(value):
        return False  # openai.api_key_env names the variable that holds the key
    return _looks_random(value)


def _mixed(text: str) -> bool:
    """Two or more of lower case, upper case and digits: generated, not a word or a name."""
    kinds = (str.islower, str.isupper, str.isdigit)
    return sum(any(kind(c) for c in text) for kind in kinds) >= 2


def _looks_random(text: str) -> bool:
    """Long, one piece (no spaces), not a path or URL, mixed and varied characters."""
    if len(text) < MIN_LENGTH or any(c.isspace() or c in "/\\" for c in text):
        return False
    counts = Counter(text)
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    return _mixed(text) and entropy >= MIN_ENTROPY
