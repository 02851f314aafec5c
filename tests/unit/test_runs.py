import hashlib
import json
import os

import pytest

from tunewright.config import load_config
from tunewright.runs import (
    MANIFEST,
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    read_manifest,
    stage_run,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["out.txt"]


def test_failed_atomic_write_keeps_old_content(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {1j: "complex keys cannot be JSON"})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_dir_commits_only_on_success(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("v1")
    assert (target / "weights.bin").read_text() == "v1"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (target / "weights.bin").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["model"]
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("v2")
    assert (target / "weights.bin").read_text() == "v2"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_stage_manifest_records_config_inputs_and_outputs(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "hi"}\n')
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "name: exp1\nseed: 7\ndata:\n  train: train.jsonl\nserve:\n  api_keys: [sk-hidden]\n"
    )
    config = load_config(config_file)
    with stage_run(config, "data", inputs=[data]) as run:
        (run.output("train.jsonl")).write_text("x\n")
    manifest = read_manifest(tmp_path / "runs" / "exp1" / "data")
    assert manifest is not None
    assert manifest["stage"] == "data"
    assert manifest["seed"] == 7
    assert manifest["outputs"] == ["train.jsonl"]
    assert manifest["inputs"] == {str(data): hashlib.sha256(data.read_bytes()).hexdigest()}
    assert manifest["config"]["data"]["train"] == ["train.jsonl"]
    assert manifest["libraries"]["transformers"]
    assert manifest["wall_seconds"] >= 0
    saved = (tmp_path / "runs" / "exp1" / "config.yaml").read_text()
    assert "sk-hidden" not in saved and "sk-hidden" not in json.dumps(manifest)


def test_crashed_stage_has_no_manifest(tmp_path):
    config = load_config(None, [f"runs_dir={tmp_path}"])
    with stage_run(config, "train"):
        pass
    assert read_manifest(tmp_path / "default" / "train") is not None
    with pytest.raises(KeyboardInterrupt), stage_run(config, "train"):
        raise KeyboardInterrupt
    assert not (tmp_path / "default" / "train" / MANIFEST).exists()
    assert read_manifest(tmp_path / "default" / "train") is None
