"""Files described by LLaMA-Factory's dataset_info.json and Axolotl's `datasets` load unchanged
through the imported data.train entries: the right roles, texts, pairs and labels, nothing
rejected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunewright.config import load_config
from tunewright.config.data_source import DataSource, MessageKeys
from tunewright.config.peers.importer import translate_file, write_translation
from tunewright.data.prepare import load_side

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "peers"


def imported_side(tmp_path: Path, peer: str, name: str, side: str = "train") -> dict:
    """{file name: Loaded} for each entry of the imported config's data.train (or eval)."""
    project = tmp_path / peer
    shutil.copytree(FIXTURES / peer, project)
    out = project / "imported.yaml"
    write_translation(translate_file(project / name, out, project), out)
    config = load_config(out)
    return {
        Path(entry.path).name: load_side(config, [entry], side)
        for entry in getattr(config.data, side)
    }


def roles(record: dict) -> list[str]:
    return [m["role"] for m in record["messages"]]


def rows(path: Path) -> list[dict]:
    text = path.read_text()
    return (
        json.loads(text)
        if path.suffix == ".json"
        else [json.loads(x) for x in text.split("\n") if x]
    )


def test_llama_factory_sharegpt_with_custom_tags_and_alpaca_columns(tmp_path):
    loaded = imported_side(tmp_path, "llamafactory", "qwen_qlora_sft.yaml")
    chats = loaded["support_chats.jsonl"]
    assert not chats.rejected and len(chats.records) == 24
    first = chats.records[0]
    # policy column -> system; customer/call/lookup/agent -> user/tool call/tool/assistant
    assert roles(first) == ["system", "user", "assistant", "tool", "assistant"]
    source = rows(FIXTURES / "llamafactory" / "data" / "support_chats.jsonl")[0]
    texts = [turn["text"] for turn in source["dialogue"]]
    assert first["messages"][0]["content"] == source["policy"]
    assert [first["messages"][k]["content"] for k in (1, 3, 4)] == [texts[0], texts[2], texts[3]]
    call = first["messages"][2]["tool_calls"][0]["function"]
    assert (call["name"], json.loads(call["arguments"])) == ("lookup_order", {"order": 2000})
    assert first["tools"][0]["name"] == "lookup_order"

    glaive = loaded["glaive_demo.json"]
    assert not glaive.rejected
    call = glaive.records[0]["messages"][2]  # after default_system's message and the user's
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "get_price"
    assert glaive.records[0]["tools"][0]["name"] == "get_price"

    sft = imported_side(tmp_path / "b", "llamafactory", "llama3_lora_sft.yaml")
    identity = sft["identity.json"]
    assert not identity.rejected
    record, source = (
        identity.records[3],
        rows(FIXTURES / "llamafactory" / "data" / "identity.json")[3],
    )
    assert roles(record) == ["system", "user", "assistant"]
    assert [m["content"] for m in record["messages"]] == [
        source["persona"],
        source["question"],
        source["answer"],
    ]
    alpaca = sft["alpaca_en_demo.json"]
    assert not alpaca.rejected
    source = rows(FIXTURES / "llamafactory" / "data" / "alpaca_en_demo.json")[0]
    assert (
        alpaca.records[0]["messages"][0]["content"]
        == f"{source['instruction']}\n\n{source['input']}"
    )


def test_llama_factory_ranking_and_kto_entries_load_as_pairs_and_feedback(tmp_path):
    pairs = imported_side(tmp_path, "llamafactory", "llama3_lora_dpo.yaml")["dpo_en_demo.json"]
    assert not pairs.rejected
    source = rows(FIXTURES / "llamafactory" / "data" / "dpo_en_demo.json")[5]
    record = pairs.records[5]
    assert record["task"] == "preference"
    assert (record["chosen"], record["rejected"]) == (
        source["chosen"]["value"],
        source["rejected"]["value"],
    )
    assert roles(record) == ["user"]

    kto = imported_side(tmp_path / "b", "llamafactory", "llama3_lora_kto.yaml")["kto_en_demo.json"]
    assert not kto.rejected
    assert [r["label"] for r in kto.records[:4]] == [True, False, True, False]
    assert roles(kto.records[0]) == ["user", "assistant"]


def test_axolotl_multi_dataset_types_load_with_their_roles_and_columns(tmp_path):
    loaded = imported_side(tmp_path, "axolotl", "qwen_multi.yml")
    assert all(not side.rejected for side in loaded.values())
    support = loaded["support.jsonl"].records[0]
    # default_system_message, then customer/agent through `roles`
    assert roles(support) == ["system", "user", "assistant"]
    assert support["messages"][0]["content"] == "You are Acme's shop assistant."
    faq = loaded["faq.jsonl"].records[0]
    assert [m["content"] for m in faq["messages"][1:]] == [
        "Can I return a used kettle?",
        "Yes, a used kettle can be returned within 10 days.",
    ]
    custom = loaded["custom.jsonl"].records[0]
    assert custom["messages"][1]["content"] == "Estimate shipping for a kettle.\n\nDistance 100 km."
    evaluation = imported_side(tmp_path / "b", "axolotl", "qwen_multi.yml", "eval")
    assert len(evaluation["faq_eval.jsonl"].records) == 8


def test_axolotl_preference_types_load_as_pairs(tmp_path):
    loaded = imported_side(tmp_path, "axolotl", "llama3_dpo.yml")
    intel, chat = loaded["pairs_intel.jsonl"], loaded["pairs_chat.jsonl"]
    assert not intel.rejected and not chat.rejected
    assert intel.records[0]["messages"][0]["content"] == "Is the kettle any good, item 0?"
    assert intel.records[0]["chosen"].startswith("The kettle is reliable")
    assert chat.records[1]["chosen"] == "Grey suits the lamp number 1 and most rooms nicely."
    assert roles(chat.records[1]) == ["user"]


@pytest.mark.parametrize(
    ("turn", "reason"),
    [
        ({"speaker": "robot", "text": "hi"}, "unknown speaker 'robot'"),
        ({"text": "hi"}, "has no 'speaker'"),
    ],
)
def test_a_speaker_the_tags_do_not_name_rejects_the_row_with_the_tag(tmp_path, turn, reason):
    data = tmp_path / "chats.jsonl"
    good = [
        {"speaker": "customer", "text": "Where is my order now?"},
        {"speaker": "agent", "text": "It ships on Friday morning, promised."},
    ]
    data.write_text(json.dumps({"dialogue": good}) + "\n" + json.dumps({"dialogue": [turn]}) + "\n")
    config = load_config(None)
    config.base_dir = tmp_path
    entry = DataSource(
        path=str(data),
        format="sharegpt",
        columns={"conversations": "dialogue"},
        messages=MessageKeys(
            role="speaker", content="text", speakers={"customer": "user", "agent": "assistant"}
        ),
    )
    loaded = load_side(config, [entry], "train")
    assert [roles(r) for r in loaded.records] == [["user", "assistant"]]
    assert len(loaded.rejected) == 1 and reason in loaded.rejected[0]["reason"]
    assert loaded.rejected[0]["source"].endswith("chats.jsonl:2")
