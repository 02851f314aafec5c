"""Chat, instruction, code, summarization and text data on a causal LM: SFT with the loss on
assistant tokens, in padding-free batches (padded ones for prefix and prompt tuning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record
from tunewright.training.distributed import DistContext, run_on_main

LOSS_MASK_SAMPLE = 16  # examples whose labels are checked against the assistant spans


def build_causal_job(
    config: Config,
    folder: Path,
    tokenizer: Any,
    train: list[Record],
    evals: list[Record],
    context: DistContext | None = None,
) -> Any:
    """The causal-LM `Job`; fails first when the chat template cannot separate the turns."""
    from tunewright.chat import verify_loss_mask
    from tunewright.methods import PROMPT_METHODS
    from tunewright.models import count_parameters
    from tunewright.training.attention import register_packed_sdpa
    from tunewright.training.features import (
        PackedCollator,
        PaddedCollator,
        causal_features,
        count_loss_tokens,
    )
    from tunewright.training.job import Job
    from tunewright.training.levers import loaded_levers, resolve_levers
    from tunewright.training.memory import causal_checkpointing
    from tunewright.training.model_setup import (
        load_base_for_training,
        resolve_precision,
        skip_adapter_input_casts,
        wrap_model,
    )
    from tunewright.training.trainer import EngineTrainer, SelectiveLossTrainer

    if not config.train.train_on_prompt:
        sample = [r["messages"] for r in train[:LOSS_MASK_SAMPLE] if r["task"] != "preference"]
        verify_loss_mask(tokenizer, sample, tools=[r.get("tools") for r in train[: len(sample)]])
    max_len, on_prompt = config.data.max_seq_len, config.train.train_on_prompt
    train_features = causal_features(tokenizer, train, max_len, on_prompt)
    eval_features = causal_features(tokenizer, evals, max_len, on_prompt)
    context = context or DistContext()
    n_params = count_parameters(folder) or 0
    # Rank 0 decides for all: processes that disagreed on checkpointing would hang under FSDP.
    checkpointing = run_on_main(
        context,
        lambda: causal_checkpointing(
            config, folder, train_features, eval_features, n_params, context.world_size
        ),
    )
    levers = resolve_levers(config, checkpointing)
    base = load_base_for_training(config, folder, levers)
    levers = loaded_levers(levers, base)
    packed = config.train.method not in PROMPT_METHODS
    attention = base.config._attn_implementation
    if packed and attention == "sdpa":
        attention = register_packed_sdpa()
        base.set_attn_implementation(attention)
    model = wrap_model(config, base, "CAUSAL_LM")
    if config.train.method == "lora" and resolve_precision(config).compute != "float32":
        skip_adapter_input_casts(model)
    return Job(
        model=model,
        tokenizer=tokenizer,
        train_features=train_features,
        eval_features=eval_features,
        collator=PackedCollator() if packed else PaddedCollator(tokenizer.pad_token_id),
        trainer_class=SelectiveLossTrainer if packed else EngineTrainer,
        n_params=n_params,
        extra={
            "batching": "padding-free" if packed else "padded",
            "attention": attention,
            "loss_tokens": count_loss_tokens(train_features),
        },
        every_parameter_used=True,
        levers=levers,
    )
