"""LLaMA-Factory's `dataset_info.json` entries -> data.train / data.eval entries (a path with
its own format, column map and message keys), so the files it describes load unchanged.

    formatting alpaca            -> format alpaca (instruction, input, output, system, history)
    formatting alpaca, ranking   -> format preference (prompt, chosen, rejected as text)
    formatting sharegpt          -> format sharegpt (conversations, system, tools) + tags
    formatting sharegpt, ranking -> format preference (conversations + chosen/rejected messages)
    kto_tag column               -> format feedback (the tag is the label)
    stage pt                     -> format text (the prompt column is the text)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunewright.config.peers.translation import Translation
from tunewright.errors import InputFileError

# LLaMA-Factory's default column names per formatting (their key -> the file's column).
ALPACA_DEFAULTS = {"prompt": "instruction", "query": "input", "response": "output"}
SHAREGPT_DEFAULTS = {"messages": "conversations"}
# Their tag -> our speaker; their defaults are sharegpt's own names, which we read already.
TAG_SPEAKERS = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "function_tag": "function_call",
    "system_tag": "system",
}
MEDIA = ("images", "videos", "audios")


def read_dataset_info(folder: Path) -> dict[str, Any]:
    path = folder / "dataset_info.json"
    if not path.is_file():
        raise InputFileError(
            f"{path} not found: LLaMA-Factory names datasets there",
            hint="Pass --base with the folder LLaMA-Factory ran in (dataset_dir is relative to "
            "it), or set dataset_dir in the config.",
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(info, dict):
        raise InputFileError(f"{path}: expected an object of named datasets")
    return info


def source_entry(
    t: Translation, name: str, info: dict[str, Any], folder: Path, pretraining: bool
) -> dict[str, Any] | None:
    """Our entry for dataset `name`, or None (with a row saying why) when it cannot load."""
    key = f"dataset_info[{name}]"
    path = _path(t, key, info, folder)
    if path is None:
        return None
    columns = dict(info.get("columns") or {})
    for media in MEDIA:
        if columns.pop(media, None):
            t.unsupported(f"{key}.columns.{media}", "text only: multimodal columns are not read")
    for extra in ("subset", "split", "num_samples", "folder"):
        if extra in info:
            t.unsupported(f"{key}.{extra}", "the whole file is read; save the part you want")
    formatting = info.get("formatting", "alpaca")
    if formatting == "alpaca":
        entry = _alpaca(t, key, info, {**ALPACA_DEFAULTS, **columns}, pretraining)
    elif formatting in ("sharegpt", "openai"):
        entry = _sharegpt(t, key, info, {**SHAREGPT_DEFAULTS, **columns})
    else:
        t.unsupported(key, f"formatting {formatting} is not known")
        return None
    return {"path": path, **entry}


def _path(t: Translation, key: str, info: dict[str, Any], folder: Path) -> str | None:
    if "file_name" in info:
        file = folder / str(info["file_name"])
        return t.path(str(file.resolve())) if file.exists() else str(file)
    if "hf_hub_url" in info:
        t.ignored(f"{key}.hf_hub_url", "read as a hub dataset id (its train split)")
        return str(info["hf_hub_url"])
    t.unsupported(key, "only file_name and hf_hub_url sources are read; save it to a file")
    return None


def _alpaca(
    t: Translation, key: str, info: dict[str, Any], columns: dict[str, str], pretraining: bool
) -> dict[str, Any]:
    if pretraining:
        return {"format": "text", "columns": {"text": columns["prompt"]}}
    if info.get("ranking"):
        if columns.get("query"):
            t.unsupported(
                f"{key}.columns.query",
                "preference prompts are the prompt column alone; join the input into it",
            )
        mapped = {
            "prompt": columns["prompt"],
            "chosen": columns.get("chosen", "chosen"),
            "rejected": columns.get("rejected", "rejected"),
        }
        return {"format": "preference", "columns": mapped}
    if "kto_tag" in columns:
        mapped = {
            "prompt": columns["prompt"],
            "completion": columns["response"],
            "label": columns["kto_tag"],
        }
        return {"format": "feedback", "columns": mapped}
    mapped = {
        "instruction": columns["prompt"],
        "input": columns["query"],
        "output": columns["response"],
    }
    for theirs, ours in (("system", "system"), ("history", "history")):
        if columns.get(theirs):
            mapped[ours] = columns[theirs]
    return {"format": "alpaca", "columns": mapped}


def _sharegpt(
    t: Translation, key: str, info: dict[str, Any], columns: dict[str, str]
) -> dict[str, Any]:
    mapped = {"conversations": columns["messages"]}
    for name in ("system", "tools"):
        if columns.get(name):
            mapped[name] = columns[name]
    fmt = "sharegpt"
    if info.get("ranking"):
        fmt = "preference"
        mapped["chosen"] = columns.get("chosen", "chosen")
        mapped["rejected"] = columns.get("rejected", "rejected")
    elif "kto_tag" in columns:
        fmt = "feedback"
        mapped["label"] = columns["kto_tag"]
    entry: dict[str, Any] = {"format": fmt, "columns": mapped}
    tags = info.get("tags") or {}
    if info.get("formatting") == "openai" and not tags:
        tags = {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        }
    if tags:
        entry["messages"] = _message_keys(tags)
    return entry


def _message_keys(tags: dict[str, str]) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "role": tags.get("role_tag", "from"),
        "content": tags.get("content_tag", "value"),
    }
    speakers = {
        str(tags[tag]): ours
        for tag, ours in TAG_SPEAKERS.items()
        if tag in tags and tags[tag] != ours
    }
    if speakers:
        keys["speakers"] = speakers
    return keys
