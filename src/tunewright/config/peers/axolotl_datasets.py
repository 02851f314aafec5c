"""Axolotl `datasets` / `test_datasets` entries -> data.train / data.eval entries: the dataset
`type` picks our format, its `field_*` keys and message mappings our column map and message
keys, so the files load as Axolotl reads them.

    alpaca, gpteacher, alpaca_chat.load_qa,      -> alpaca (with columns where names differ)
      alpaca_w_system.load_open_orca, {field_*}
    sharegpt                                     -> sharegpt
    chat_template                                -> sharegpt + message keys from
                                                    message_property_mappings and roles
    completion                                   -> text (the `field` column)
    <template>.intel / .argilla / .prompt_pairs  -> preference, prompt/chosen/rejected text
    <template>.ultra                             -> preference, chosen/rejected conversations
    chat_template.default (rl)                   -> preference, messages + chosen/rejected turns
"""

from __future__ import annotations

from typing import Any

from tunewright.config.peers.translation import Translation

SFT_TYPES: dict[str, tuple[str, dict[str, str]]] = {
    "alpaca": ("alpaca", {}),
    "alpaca_chat": ("alpaca", {}),
    "gpteacher": ("alpaca", {"output": "response"}),
    "alpaca_chat.load_qa": ("alpaca", {"instruction": "question", "output": "answer"}),
    "alpaca_w_system.load_open_orca": (
        "alpaca",
        {"system": "system_prompt", "instruction": "question", "output": "response"},
    ),
    "sharegpt": ("sharegpt", {}),
}
# Preference types are `<chat template>.<loader>`; the loader fixes the columns.
PAIR_LOADERS: dict[str, dict[str, str]] = {
    "intel": {"prompt": "question"},
    "argilla": {
        "prompt": "instruction",
        "chosen": "chosen_response",
        "rejected": "rejected_response",
    },
    "prompt_pairs": {},
    "ultra": {},
}
# Axolotl's chat_template defaults: its role names -> ours, and the message keys.
DEFAULT_ROLES = {
    "human": "user",
    "gpt": "assistant",
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
}
# Keys of a dataset entry that change nothing for us (the loader reads the file as it is).
QUIET = {"path", "type", "ds_type", "data_files", "roles_to_train", "train_on_eos", "split"}


def source_entries(t: Translation, key: str, items: Any, preference: bool) -> list[dict]:
    """Our entries for one `datasets` list (`key` names it in the rows)."""
    entries = []
    for index, item in enumerate(items or []):
        where = f"{key}[{index}]"
        if not isinstance(item, dict) or "path" not in item:
            t.unsupported(where, "an entry needs a path")
            continue
        shape = _shape(t, where, item, preference)
        if shape is None:
            continue
        for path in _paths(t, where, item):
            entries.append({"path": path, **shape})
        for option in sorted(set(item) - QUIET - _READ):
            t.unsupported(f"{where}.{option}", "not read; the file is loaded as its type says")
        _check_training_roles(t, where, item)
    return entries


_READ = {
    "field_messages",
    "message_property_mappings",
    "message_field_role",
    "message_field_content",
    "roles",
    "field",
    "field_instruction",
    "field_input",
    "field_output",
    "field_system",
    "field_chosen",
    "field_rejected",
    "field_prompt",
}


def _paths(t: Translation, where: str, item: dict[str, Any]) -> list[str]:
    files = item.get("data_files")
    if files:
        names = [files] if isinstance(files, str) else list(files)
        return [t.path(str(name)) for name in names]
    if item.get("split", "train") != "train":
        t.unsupported(f"{where}.split", "only a hub dataset's train split is read")
    return [t.path(str(item["path"]))]


def _shape(
    t: Translation, where: str, item: dict[str, Any], preference: bool
) -> dict[str, Any] | None:
    kind = item.get("type", "chat_template" if not preference else None)
    if isinstance(kind, dict):
        return _custom_alpaca(t, where, kind)
    kind = str(kind)
    if preference:
        return _pair_shape(t, where, kind, item)
    if kind in SFT_TYPES:
        fmt, columns = SFT_TYPES[kind]
        return {"format": fmt, **({"columns": columns} if columns else {})}
    if kind == "chat_template":
        return _chat_template(item)
    if kind == "completion":
        return {"format": "text", "columns": {"text": str(item.get("field", "text"))}}
    t.unsupported(
        f"{where}.type",
        f"type {kind} is not known; convert the file to alpaca, sharegpt or OpenAI messages",
    )
    return None


def _custom_alpaca(t: Translation, where: str, kind: dict[str, Any]) -> dict[str, Any]:
    """A `type:` mapping (field_instruction, field_input, field_output, field_system, format)."""
    columns = {}
    for ours, theirs in (
        ("instruction", "field_instruction"),
        ("input", "field_input"),
        ("output", "field_output"),
        ("system", "field_system"),
    ):
        if theirs in kind:
            columns[ours] = str(kind[theirs])
    for option in ("format", "no_input_format", "system_format"):
        if option in kind:
            t.unsupported(
                f"{where}.type.{option}",
                "the prompt is rendered by the chat template, not a format string; put the "
                "wording into the data or data.system_prompt",
            )
    return {"format": "alpaca", "columns": columns}


def _chat_template(item: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "format": "sharegpt",
        "columns": {"conversations": str(item.get("field_messages", "messages"))},
    }
    mapping = dict(item.get("message_property_mappings") or {})
    role = str(mapping.get("role", item.get("message_field_role", "role")))
    content = str(mapping.get("content", item.get("message_field_content", "content")))
    speakers = dict(DEFAULT_ROLES)
    for ours, theirs in (item.get("roles") or {}).items():
        for name in [theirs] if isinstance(theirs, str) else theirs:
            speakers[str(name)] = str(ours)
    entry["messages"] = {
        "role": role,
        "content": content,
        "speakers": {k: v for k, v in speakers.items() if k != v},
    }
    return entry


def _pair_shape(
    t: Translation, where: str, kind: str, item: dict[str, Any]
) -> dict[str, Any] | None:
    if kind == "chat_template.default" or kind == "chat_template":
        entry = _chat_template(item)
        entry["format"] = "preference"
        entry["columns"]["chosen"] = str(item.get("field_chosen", "chosen"))
        entry["columns"]["rejected"] = str(item.get("field_rejected", "rejected"))
        return entry
    loader = kind.split(".", 1)[1] if "." in kind else ""
    if loader not in PAIR_LOADERS:
        t.unsupported(
            f"{where}.type",
            f"preference type {kind} is not known; use prompt/chosen/"
            "rejected columns (chatml.prompt_pairs) or chat_template.default",
        )
        return None
    if loader == "intel":
        t.ignored(f"{where}.type", "the system column of chatml.intel rows is not read")
    columns = PAIR_LOADERS[loader]
    return {"format": "preference", **({"columns": dict(columns)} if columns else {})}


def _check_training_roles(t: Translation, where: str, item: dict[str, Any]) -> None:
    roles = item.get("roles_to_train")
    if roles is not None and list(roles) != ["assistant"]:
        t.unsupported(
            f"{where}.roles_to_train",
            "assistant turns are trained (all tokens with train.train_on_prompt)",
        )
    eos = item.get("train_on_eos")
    if eos is not None and eos != "turn":
        t.unsupported(f"{where}.train_on_eos", "each trained turn's end-of-turn token is trained")
