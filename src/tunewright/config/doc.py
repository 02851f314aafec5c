"""Documentation generated from the config models' field descriptions.

`starter_yaml` is what `tunewright init` writes; `reference_markdown` is the README's config
reference. Both come from the same descriptions, so neither can drift from the code.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tunewright.config import Config


def starter_yaml(model: type[BaseModel] = Config, indent: int = 0) -> str:
    """A complete config with every key at its default, each preceded by its description."""
    lines: list[str] = []
    if indent == 0:
        lines += [
            "# tunewright config. Check it with: tunewright validate config.yaml",
            "# Every key is optional; values shown are the defaults (data.train shows an example).",
            "",
        ]
    pad = "  " * indent
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        lines.append(f"{pad}# {field.description}")
        sub = _section_model(field)
        if sub is not None:
            lines.append(f"{pad}{name}:")
            lines.append(starter_yaml(sub, indent + 1).rstrip("\n"))
        else:
            lines.append(f"{pad}{_yaml_item(name, _starter_value(field))}")
        if indent == 0:
            lines.append("")
    return "\n".join(lines) + "\n"


def reference_markdown(model: type[BaseModel] = Config, prefix: str = "") -> str:
    """A Markdown table of every key, its default and description."""
    rows: list[str] = []
    if not prefix:
        rows += ["| key | default | description |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = f"{prefix}{name}"
        sub = _section_model(field)
        if sub is not None:
            rows.append(f"| `{key}` | | {_cell(field.description)} |")
            rows.append(reference_markdown(sub, key + ".").rstrip("\n"))
        else:
            default = yaml.safe_dump(_default(field), default_flow_style=True).strip()
            default = default.removesuffix("...").strip()
            rows.append(f"| `{key}` | `{default}` | {_cell(field.description)} |")
            optional = _optional_section(field)
            if optional is not None:  # off by default; its keys apply once it is set
                rows.append(reference_markdown(optional, key + ".").rstrip("\n"))
    return "\n".join(rows) + "\n"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def _section_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _optional_section(field: FieldInfo) -> type[BaseModel] | None:
    """X for a field typed `X | None` where X is a section."""
    members = [a for a in typing.get_args(field.annotation) if a is not type(None)]
    if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
        return members[0]
    return None


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        value = None
    else:
        value = field.default
    if isinstance(value, list):
        value = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
    return value


def _starter_value(field: FieldInfo) -> Any:
    value = _default(field)
    if value in (None, [], {}) and field.examples:
        return field.examples[0]
    return value


def _yaml_item(name: str, value: Any) -> str:
    text = yaml.safe_dump({name: value}, default_flow_style=True, sort_keys=False).strip()
    # safe_dump wraps a single mapping in braces in flow style; unwrap to block style.
    return text[1:-1] if text.startswith("{") and text.endswith("}") else text


START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def update_readme(path: Path) -> bool:
    """Rewrite the config reference between the README's markers; True when it changed."""
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    updated = f"{head}{START}\n{reference_markdown()}{END}{tail}"
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":  # python -m tunewright.config.doc README.md
    import sys

    changed = update_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
    print("README.md config reference " + ("updated" if changed else "already current"))
