"""The real embedded model trains a few LoRA steps and its loss falls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunewright.config import load_config
from tunewright.training.stage import train_model

pytestmark = pytest.mark.slow
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def test_lora_on_smollm2_learns_the_quickstart_format(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunewright.models import resolve_model

    shutil.copy(QUICKSTART / "config.yaml", tmp_path / "config.yaml")
    rows = (QUICKSTART / "orders.jsonl").read_text().splitlines()[:48]
    (tmp_path / "orders.jsonl").write_text("\n".join(rows) + "\n")
    config = load_config(
        tmp_path / "config.yaml",
        [
            "train.max_steps=8",
            "train.batch_size=4",
            "train.learning_rate=1e-3",
            "train.report_to=[]",
        ],
    )
    result = train_model(config)
    metrics = result.metrics
    assert metrics["steps"] == 8
    assert metrics["final_loss"] < metrics["first_loss"]
    base = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct"))
    tuned = PeftModel.from_pretrained(base, result.output_dir)
    assert any("lora_B" in name for name, _ in tuned.named_parameters())
    manifest = json.loads((result.output_dir.parent / "manifest.json").read_text())
    assert manifest["batching"] == "padding-free"
    assert manifest["trainable_parameters"] < manifest["total_parameters"] / 10
