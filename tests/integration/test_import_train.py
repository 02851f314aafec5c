"""An imported LLaMA-Factory quickstart trains: its dataset_info.json files (alpaca, and sharegpt
with custom tags) load as they are, on a base model whose tokenizer has no chat template, so the
config's `template: chatml` supplies one and the manifest records it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "peers"


def test_imported_quickstart_trains_with_the_named_template(run_cli, tmp_path, tiny_model_dir):
    base = tmp_path / "base-model"
    shutil.copytree(tiny_model_dir, base)
    for file in base.glob("chat_template.jinja"):
        file.unlink()
    settings = json.loads((base / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(settings))

    project = tmp_path / "llamafactory"
    shutil.copytree(FIXTURES / "llamafactory", project)
    out = project / "quickstart.tunewright.yaml"
    source = project / "quickstart_lora_sft.yaml"
    code, _, err = run_cli("import-config", str(source), "--out", str(out), "--base", str(project))
    assert code == 0, err

    code, _, err = run_cli("train", str(out), f"model.name={base}")
    assert code == 0, err

    run = project / "saves" / "smollm2" / "lora" / "quickstart"
    data = json.loads((run / "data" / "manifest.json").read_text())
    assert data["counts"]["rejected"] == 0, (run / "data" / "rejected.jsonl").read_text()
    assert data["counts"]["train"] + data["counts"]["eval"] == 48  # 24 alpaca + 24 chats
    manifest = json.loads((run / "train" / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 3
    template = manifest["chat_template"]
    assert (template["source"], template["name"]) == ("registry", "chatml")
    assert "<|im_start|>" in template["jinja"]
    saved = (run / "train" / "adapter" / "chat_template.jinja").read_text()
    assert saved == template["jinja"]
    # The chats' tool results kept their role through the custom tags.
    records = [json.loads(x) for x in (run / "data" / "train.jsonl").read_text().splitlines()]
    chats = [r for r in records if any(m["role"] == "tool" for m in r["messages"])]
    assert chats and all(r["messages"][0]["role"] == "system" for r in chats)

    adapter = run / "train" / "adapter" / "adapter_model.safetensors"
    from safetensors.torch import load_file

    weights = load_file(adapter)
    assert any(torch.count_nonzero(w) for n, w in weights.items() if "lora_B" in n)


def test_imported_quickstart_trains_the_embedded_model_as_written(run_cli, tmp_path):
    """The LLaMA-Factory config names SmolLM2 by its hub id: the import points it at the copy
    tunewright ships, and it trains as imported (steps cut to 2 for the suite)."""
    from tunewright.config.peers.translation import EMBEDDED_HUB_IDS
    from tunewright.models import EMBEDDED

    assert {m.hub_id: name for name, m in EMBEDDED.items()} == EMBEDDED_HUB_IDS
    project = tmp_path / "llamafactory"
    shutil.copytree(FIXTURES / "llamafactory", project)
    out = project / "quickstart.tunewright.yaml"
    source = project / "quickstart_lora_sft.yaml"
    code, _, err = run_cli("import-config", str(source), "--out", str(out))
    assert code == 0, err
    assert "  name: smollm2-135m-instruct  # from: model_name_or_path" in out.read_text()
    code, _, err = run_cli("train", str(out), "train.max_steps=2")
    assert code == 0, err
    run = project / "saves" / "smollm2" / "lora" / "quickstart"
    manifest = json.loads((run / "train" / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 2
    assert (run / "train" / "adapter" / "adapter_model.safetensors").is_file()
