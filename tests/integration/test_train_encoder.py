"""Classification with the embedded encoder (all-MiniLM-L6-v2) and a classification head."""

from __future__ import annotations

import json

import pytest
import torch
from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.training.stage import build_job, run_job

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", ["lora", "full"])
def test_encoder_classifier_trains_and_reloads(tmp_path, method):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from tunewright.models import resolve_model

    good = ["great", "lovely", "wonderful", "excellent", "superb"]
    bad = ["awful", "terrible", "boring", "dreadful", "poor"]
    rows = [
        {"text": f"The film was {w} number {i}", "label": "pos" if w in good else "neg"}
        for i in range(4)
        for w in good + bad
    ]
    csv = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)
    path = make_project(
        tmp_path,
        model="minilm-l6",
        rows=csv.encode(),
        data={"train": "train.csv", "max_seq_len": 64},
        train={
            "method": method,
            "max_steps": 3,
            "batch_size": 8,
            "grad_accum": 1,
            "learning_rate": 0.0005,
        },
    )
    config = load_config(path)
    job = build_job(config)
    before = {n: p.detach().clone() for n, p in job.model.named_parameters() if p.requires_grad}
    result = run_job(config, job)
    changed = [
        n
        for n, p in job.model.named_parameters()
        if n in before and not torch.equal(before[n], p.detach())
    ]
    assert len(changed) >= len(before) // 2
    assert job.extra["labels"] == ["neg", "pos"]

    folder = resolve_model("minilm-l6")
    if method == "full":
        reloaded = AutoModelForSequenceClassification.from_pretrained(result.output_dir)
    else:
        base = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
        reloaded = PeftModel.from_pretrained(base, result.output_dir)
    batch = job.tokenizer(["The film was great"], return_tensors="pt")
    job.model.eval()
    reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(job.model(**batch).logits, reloaded(**batch).logits, atol=1e-5)
    manifest = json.loads((tmp_path / "runs" / "default" / "train" / "manifest.json").read_text())
    assert manifest["labels"] == ["neg", "pos"]

    from tunewright.evaluation.stage import evaluate_run

    results = evaluate_run(config)
    assert [m["metric"] for m in results["metrics"]] == ["accuracy", "f1"]
    assert results["models"]["base"].startswith("majority class")
    predicted = {e["tuned"] for e in results["examples"]}
    assert predicted <= {"neg", "pos"}
    confusion = results["confusion"]["tuned"]
    assert confusion["labels"] == ["neg", "pos"]
    assert sum(map(sum, confusion["counts"])) == results["n_examples"]
