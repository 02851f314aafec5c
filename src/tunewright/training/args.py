"""The one translation from our `train` section (plus resolved `auto` values) to the HF
`TrainingArguments`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.device import detect_device
from tunewright.training.defaults import Hyper

# `train.optimizer` -> the Trainer's `optim` name.
OPTIMIZERS = {
    "adamw": "adamw_torch",
    "adamw_fused": "adamw_torch_fused",
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "adafactor": "adafactor",
}


def training_arguments(
    config: Config,
    hyper: Hyper,
    output_dir: Path,
    has_eval: bool,
    *,
    padded: bool = False,
    engine: dict[str, Any] | None = None,
    every_parameter_used: bool = False,
    liger: bool = False,
    args_class: type | None = None,
    objective: dict[str, Any] | None = None,
) -> Any:
    """`engine` holds the distributed engine's own arguments (`training.engines`); with
    `every_parameter_used`, DDP skips its search for parameters that got no gradient; `liger`
    is the resolved `train.liger` (`training.levers`). `args_class` is a TRL config class (a
    `TrainingArguments` subclass) and `objective` its own arguments, for the preference
    objectives (`training.preference`)."""
    import torch
    from transformers import TrainingArguments

    args_class = args_class or TrainingArguments

    from tunewright.training.levers import resolve_optimizer
    from tunewright.training.model_setup import compute_dtype

    train = config.train
    dtype = compute_dtype(config)
    save_strategy, save_steps = _strategy(hyper.save_every)
    eval_strategy, eval_steps = _strategy(hyper.eval_every) if has_eval else ("no", None)
    # The best checkpoint can only be tracked when every checkpoint has an eval loss.
    track_best = has_eval and (save_strategy, save_steps) == (eval_strategy, eval_steps)
    return args_class(
        output_dir=str(output_dir),
        per_device_train_batch_size=hyper.batch_size,
        per_device_eval_batch_size=hyper.batch_size,
        gradient_accumulation_steps=hyper.grad_accum,
        learning_rate=hyper.learning_rate,
        num_train_epochs=hyper.epochs,
        max_steps=train.max_steps if train.max_steps is not None else -1,
        warmup_steps=train.warmup_ratio,  # a float below 1 is a share of all steps
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.lr_scheduler,
        optim=OPTIMIZERS[resolve_optimizer(config).value],
        # Liger's kernels patch the model when training starts; its fused linear-cross-entropy
        # then computes the loss from the hidden states (SelectiveLossTrainer passes labels).
        use_liger_kernel=liger,
        logging_steps=1,  # every step: NaN is caught at once and metrics.jsonl is complete
        logging_nan_inf_filter=False,
        eval_strategy=eval_strategy,
        eval_steps=eval_steps,
        save_strategy=save_strategy,
        save_steps=save_steps,
        save_total_limit=train.keep_checkpoints,
        load_best_model_at_end=track_best,
        metric_for_best_model="eval_loss" if track_best else None,
        greater_is_better=False if track_best else None,
        report_to=list(train.report_to) or "none",
        run_name=config.name,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=detect_device() != "cuda",  # Apple GPUs (mps) train on the CPU too
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=True,  # our own progress bar shows tokens/s too
        remove_unused_columns=False,
        dataloader_num_workers=0,
        average_tokens_across_devices=True,
        # Counted by the Trainer and summed over all processes. Padding-free batches hold no
        # padding, so every input token counts; padded ones are counted by attention mask.
        include_num_input_tokens_seen="non_padding" if padded else "all",
        ddp_find_unused_parameters=False if every_parameter_used else None,
        **(engine or {}),
        **(objective or {}),
    )


def _strategy(every: str | int) -> tuple[str, int | None]:
    return ("epoch", None) if every == "epoch" else ("steps", int(every))
