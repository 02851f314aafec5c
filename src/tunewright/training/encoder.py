"""Classification with an encoder (e.g. `minilm-l6`): a sequence-classification head on top,
trained fully or with LoRA; labels come from the prepared classification records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record
from tunewright.errors import TunewrightError


def build_encoder_job(
    config: Config, folder: Path, tokenizer: Any, train: list[Record], evals: list[Record]
) -> Any:
    from transformers import DataCollatorWithPadding

    from tunewright.models import count_parameters
    from tunewright.training.features import classification_features
    from tunewright.training.job import Job
    from tunewright.training.levers import encoder_checkpointing, loaded_levers, resolve_levers
    from tunewright.training.model_setup import load_base_for_training, wrap_model
    from tunewright.training.trainer import EngineTrainer

    unlabeled = [r for r in train + evals if r.get("label") is None]
    if unlabeled:
        source = unlabeled[0]["source"]
        raise TunewrightError(
            f"{config.model.name} is an encoder: every example needs a label, but "
            f"{source['file']}:{source['line']} has none",
            hint="Use classification data (text, label) or a causal language model.",
        )
    labels = sorted({str(r["label"]) for r in train + evals})
    levers = resolve_levers(config, encoder_checkpointing(config), causal=False)
    base = load_base_for_training(config, folder, levers, num_labels=len(labels))
    base.config.id2label = dict(enumerate(labels))
    base.config.label2id = {label: i for i, label in enumerate(labels)}
    max_len = min(config.data.max_seq_len, tokenizer.model_max_length)
    return Job(
        model=wrap_model(config, base, "SEQ_CLS"),
        tokenizer=tokenizer,
        train_features=classification_features(tokenizer, train, labels, max_len),
        eval_features=classification_features(tokenizer, evals, labels, max_len),
        collator=DataCollatorWithPadding(tokenizer),
        trainer_class=EngineTrainer,
        n_params=count_parameters(folder) or 0,
        extra={"batching": "padded", "labels": labels},
        levers=loaded_levers(levers, base),
    )
