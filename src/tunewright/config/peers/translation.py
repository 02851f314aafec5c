"""What an import produces: our config as nested data, where each value came from, and one row
per source key saying what became of it; and the commented YAML written from them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from tunewright.config.schema import Config

Status = Literal["translated", "changed", "unsupported", "ignored"]
STATUS_TEXT = {
    "translated": "translated",
    "changed": "translated, meaning changed",
    "unsupported": "not supported",
    "ignored": "not needed",
}


# Hub ids of the models tunewright ships (tunewright.models.EMBEDDED, which config may not
# import; a test keeps the two equal): an imported config naming one trains on the shipped copy
# instead of downloading it.
EMBEDDED_HUB_IDS = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2-135m-instruct",
    "sentence-transformers/all-MiniLM-L6-v2": "minilm-l6",
}


Handler = Callable[["Translation", str, Any, dict[str, Any]], None]  # (t, key, value, raw)


def simple(target: str, convert: Callable[[Any], Any] = lambda v: v, note: str = "") -> Handler:
    """A handler that writes the source value (converted) to `target`."""

    def handle(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
        t.put(target, convert(value), key, note)

    return handle


def common(function: Callable[[Translation, str, Any], None]) -> Handler:
    """A handler from a function that needs no other source keys."""

    def handle(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
        function(t, key, value)

    return handle


def translate_keys(
    raw: dict[str, Any],
    t: Translation,
    consumed: set[str],
    handlers: dict[str, Handler],
    ignored: dict[str, str],
    unsupported: dict[str, str],
    not_needed: Callable[[str], str | None] = lambda key: None,
) -> None:
    """Every source key but `consumed`, through its handler, or a row saying it is not needed
    or not supported (and what to do). `not_needed(key)` may say why a key outside the tables
    needs nothing (Axolotl's wandb_* keys)."""
    for key, value in raw.items():
        if key in consumed:
            continue
        handler = handlers.get(key)
        why = not_needed(key)
        if value is None:
            t.ignored(key, "unset (null)")
        elif handler is not None:
            handler(t, key, value, raw)
        elif key in ignored:
            t.ignored(key, ignored[key])
        elif key in unsupported:
            t.unsupported(key, unsupported[key])
        elif why:
            t.ignored(key, why)
        else:
            t.unsupported(key, "not known to the importer; find its tunewright key in the README")


def model_name(t: Translation, key: str, value: Any, raw: dict[str, Any]) -> None:
    """The peer's model key -> model.name; a hub id we ship becomes the embedded name."""
    embedded = EMBEDDED_HUB_IDS.get(str(value))
    if embedded is None:
        t.put("model.name", value, key)
    else:
        t.put("model.name", embedded, key, f"the copy of {value} that tunewright ships (offline)")


@dataclass
class Row:
    """One source key: what it became (`target`, our dotted key) and, unless it translated
    as it was, how its meaning changed or what to do instead."""

    key: str
    status: Status
    target: str = ""
    note: str = ""


@dataclass
class Translation:
    peer: str  # "LLaMA-Factory" or "Axolotl"
    source: Path
    out_dir: Path  # the folder the written config will be in: its paths are relative to it
    base: Path  # the folder the peer's relative paths are relative to
    config: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)  # dotted key -> its comment
    rows: list[Row] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # written beside the config: name -> text

    def put(self, target: str, value: Any, key: str, note: str = "", row: bool = True) -> None:
        """Set `target` from source key `key`; a `note` means its meaning changed. `row`: add
        the table row (False when another target of the same key has it)."""
        node = self.config
        *parents, last = target.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        previous = self.comments.get(target)
        self.comments[target] = f"{previous}, {key}" if previous else key
        if row:
            self.rows.append(Row(key, "changed" if note else "translated", target, note))

    def get(self, target: str, default: Any = None) -> Any:
        node: Any = self.config
        for part in target.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def unsupported(self, key: str, what_to_do: str) -> None:
        self.rows.append(Row(key, "unsupported", note=what_to_do))

    def ignored(self, key: str, why: str) -> None:
        self.rows.append(Row(key, "ignored", note=why))

    def find(self, value: str) -> Path | None:
        """Where a path of the source config is: the peers resolve relative paths against the
        folder they ran in (`base`), so that first, then the source config's folder."""
        path = Path(value).expanduser()
        if path.is_absolute():
            return path if path.exists() else None
        for folder in (self.base, self.source.parent):
            if (folder / path).exists():
                return (folder / path).resolve()
        return None

    def path(self, value: str) -> str:
        """A path from the source config, as the written config must spell it: relative to the
        output's folder when it exists, else unchanged (a hub id, or a file still to come)."""
        found = self.find(value)
        if found is None:
            return value
        return os.path.relpath(found, self.out_dir.resolve())


def commented_yaml(translation: Translation) -> str:
    """The config as YAML, every translated key followed by `# from: <source key>`."""
    lines = [
        f"# Imported from {translation.source.name} ({translation.peer}) by "
        "`tunewright import-config`.",
        "# Each key names the source key it came from; `import-config` printed what became of "
        "every source key.",
        "# Keys not written here keep tunewright's defaults (`tunewright init` shows them all).",
    ]
    _emit(translation.config, translation.comments, "", 0, lines)
    return "\n".join(lines) + "\n"


def _schema_order(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of our config, in the order `tunewright init` writes them."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += _schema_order(info.annotation, f"{prefix}{name}.")
    return keys


def _emit(
    node: dict[str, Any], comments: dict[str, str], prefix: str, depth: int, lines: list[str]
) -> None:
    indent = "  " * depth
    order = {key: n for n, key in enumerate(_schema_order(Config))}
    for key, value in sorted(node.items(), key=lambda kv: order.get(f"{prefix}{kv[0]}", 1 << 30)):
        dotted = f"{prefix}{key}"
        comment = f"  # from: {comments[dotted]}" if dotted in comments else ""
        if isinstance(value, dict) and dotted not in comments:
            lines.append(f"{indent}{key}:")
            _emit(value, comments, f"{dotted}.", depth + 1, lines)
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            lines.append(f"{indent}{key}:{comment}")
            block = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=1000)
            lines += [f"{indent}  {line}" for line in block.rstrip("\n").split("\n")]
        else:
            # Dumped inside a one-item list, so a bare scalar gets no document end marker.
            text = yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=1000)
            text = text.strip()[1:-1]
            lines.append(f"{indent}{key}: {text}{comment}")
