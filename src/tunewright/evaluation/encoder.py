"""Evaluating an encoder classifier. An encoder has no "base" answer of its own (its
classification head is new), so the base column is the majority-class baseline from the
training data: the accuracy a model gets by always answering the most common label."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record
from tunewright.files import read_jsonl
from tunewright.runs import data_split


def evaluate_encoder(
    config: Config, tuned_dir: Path, records: list[Record], labels: list[str]
) -> dict[str, Any]:
    from tunewright.data.records import expected_answer
    from tunewright.evaluation.compare import compare_metric, examples_table, train_summary
    from tunewright.evaluation.metrics import select_metrics
    from tunewright.evaluation.slices import slice_results

    train = read_jsonl(data_split(config, "train"))
    majority = Counter(str(r["label"]) for r in train).most_common(1)[0][0]
    references = [expected_answer(r) or "" for r in records]
    texts = ["\n".join(m["content"] for m in r["messages"] if m["role"] == "user") for r in records]
    outputs = {
        "base": [majority] * len(records),
        "tuned": predict_labels(config, tuned_dir, texts, labels),
    }
    names, primary = select_metrics(
        config.eval.metrics, config.eval.primary_metric, "classification"
    )
    comparisons = [compare_metric(name, outputs, references, config) for name in names]
    verdict = next(c["verdict"] for c in comparisons if c["metric"] == primary)
    prompts = [[m for m in r["messages"] if m["role"] == "user"] for r in records]
    return {
        "run": config.name,
        "task": "classification",
        "n_examples": len(records),
        "models": {"base": f"majority class '{majority}' (baseline)", "tuned": str(tuned_dir)},
        "decoding": {"classifier": "argmax over labels", "batch_size": config.eval.batch_size},
        "primary_metric": primary,
        "verdict": verdict,
        "metrics": comparisons,
        "examples": examples_table(records, prompts, references, outputs, primary),
        "train": train_summary(config),
        **slice_results(records, outputs, references, primary, names, config, labels),
        "warnings": [
            "Encoder classifier: 'base' is the majority-class baseline, since the "
            "untrained classification head has no meaningful answers."
        ],
    }


def predict_labels(
    config: Config, tuned_dir: Path, texts: list[str], labels: list[str]
) -> list[str]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunewright.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(tuned_dir)
    if tuned_dir.name == "model":
        model = AutoModelForSequenceClassification.from_pretrained(tuned_dir)
    else:
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(
            resolve_model(config.model.name), num_labels=len(labels)
        )
        model = PeftModel.from_pretrained(base, tuned_dir)
    model.eval()
    predictions: list[str] = []
    size = config.eval.batch_size
    for start in range(0, len(texts), size):
        batch = tokenizer(
            texts[start : start + size],
            padding=True,
            truncation=True,
            max_length=config.data.max_seq_len,
            return_tensors="pt",
        )
        with torch.no_grad():
            predictions += [labels[i] for i in model(**batch).logits.argmax(-1).tolist()]
    return predictions
