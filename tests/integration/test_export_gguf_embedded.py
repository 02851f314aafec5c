"""The embedded model, fine-tuned with the quickstart config, exports to f16 and q8_0 GGUF and an
Ollama Modelfile; both files pass their parity checks against the merged model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunewright.config import load_config
from tunewright.exporting.stage import export_model
from tunewright.training.stage import train_model

pytestmark = pytest.mark.slow
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def test_quickstart_run_exports_f16_and_q8_0_with_parity(tmp_path):
    shutil.copy(QUICKSTART / "config.yaml", tmp_path / "config.yaml")
    rows = (QUICKSTART / "orders.jsonl").read_text().splitlines()[:48]
    (tmp_path / "orders.jsonl").write_text("\n".join(rows) + "\n")
    # A few steps are enough: the check is that export reproduces what was trained.
    short = ["train.max_steps=4", "train.batch_size=4", "train.report_to=[]"]
    train_model(load_config(tmp_path / "config.yaml", short))

    checks = {}
    for fmt, quant in (("gguf", "f16"), ("ollama", "q8_0")):
        config = load_config(
            tmp_path / "config.yaml", [*short, f"export.format={fmt}", f"export.quant={quant}"]
        )
        result = export_model(config)
        assert result.parity is not None and result.parity["passed"]
        checks[quant] = result.parity["check"]
        assert (result.folder / f"quickstart-{quant}.gguf").is_file()

    f16, q8 = checks["f16"], checks["q8_0"]
    assert f16["prompts_same"] == q8["prompts_same"] == 8  # tokenizer and template intact
    assert f16["greedy_same"] == 8 and f16["max_logit_diff"] < f16["tolerance"]
    assert q8["top1_agreement"] >= 0.9 and q8["max_logit_diff"] > f16["max_logit_diff"]
    modelfile = (config.run_dir / "export" / "gguf-q8_0" / "Modelfile").read_text()
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in modelfile
    manifest = json.loads((config.run_dir / "export" / "manifest.json").read_text())
    assert set(manifest["exports"]) == {"gguf-f16", "gguf-q8_0"}
    assert manifest["merge"]["parity"]["passed"]
