"""`tunewright plan`: memory per device and training time, estimated before training.

Read top to bottom: prepare the data (as `train` would), render every training example to get
its real token length, build the model on the meta device (no weights loaded) to count its
parameters by dtype and the trainable ones, add up memory per device and compare it with what
the device has (the memory model is `training.memory`), then time a few real training steps on
the real model to turn the dataset's token count into an ETA.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.training.memory import (
    PlanResult,
    Tokens,
    choose_checkpointing,
    count_tokens,
    meta_shapes,
    suggest_levers,
)

WARMUP_STEPS = 3  # the first is discarded (allocation, one-time setup)
EVAL_COST = 1 / 3  # an eval token costs a forward only: about a third of a training token


def plan_training(
    config: Config, *, processes: int = 1, warmup: bool = True, console: Console | None = None
) -> PlanResult:
    """Estimate memory per device and, after a short measured warm-up, the training time."""
    from tunewright.data.prepare import ensure_prepared
    from tunewright.models import load_base_tokenizer, resolve_model
    from tunewright.training.defaults import resolve_hyper

    console = console or Console(stderr=True)
    data_dir = ensure_prepared(config, console)
    folder = resolve_model(config.model.name)
    tokenizer, _ = load_base_tokenizer(config)
    shapes = meta_shapes(config, folder)
    hyper = resolve_hyper(config.train, shapes.total_params, 0, processes=processes)
    tokens = token_counts(config, tokenizer, data_dir, hyper)
    hyper = resolve_hyper(config.train, shapes.total_params, tokens.examples, processes=processes)
    result, checkpointing = choose_checkpointing(config, shapes, tokens, processes)
    result.levers = {"gradient_checkpointing": checkpointing.as_dict()}
    result.hyper = hyper.as_dict()
    if result.fits != "fits":
        result.suggestions = suggest_levers(
            config, folder, shapes, tokens, processes, checkpointing=checkpointing.value
        )
    if result.fits == "does not fit":
        result.notes.append("no warm-up: the run would not fit in memory")
    elif warmup:
        result.tokens_per_s, result.warmup_peak_rss = measure_throughput(config, console)
        result.eta_seconds = eta_seconds(config, tokens, hyper, result)
    return result


def token_counts(config: Config, tokenizer: Any, data_dir: Path, hyper: Any) -> Tokens:
    """Rendered lengths of the prepared examples, through the same code training uses."""
    from tunewright.files import read_jsonl
    from tunewright.training.features import causal_features

    max_len, on_prompt = config.data.max_seq_len, config.train.train_on_prompt
    train = causal_features(tokenizer, read_jsonl(data_dir / "train.jsonl"), max_len, on_prompt)
    evals = causal_features(tokenizer, read_jsonl(data_dir / "eval.jsonl"), max_len, on_prompt)
    return count_tokens(config, train, evals, hyper)


# ---------------------------------------------------------------------------------------------
# Time


def measure_throughput(config: Config, console: Console) -> tuple[float, float]:
    """Non-padding tokens/s over a few real training steps (forward, backward, AdamW) on real
    batches of the training data, and this process's peak RSS afterwards (bytes)."""
    import torch

    from tunewright.training.defaults import resolve_hyper
    from tunewright.training.stage import build_job, peak_rss_mb

    job = build_job(config, console)
    hyper = resolve_hyper(config.train, job.n_params, len(job.train_features))
    trainable = [p for p in job.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-6)
    job.model.train()
    rng = random.Random(config.seed)
    seconds = tokens = 0.0
    for step in range(WARMUP_STEPS):
        batch = job.collator(rng.sample(job.train_features, hyper.batch_size))
        started = time.perf_counter()
        _loss(job, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step > 0:  # the first step pays for allocation and one-time setup
            seconds += time.perf_counter() - started
            tokens += _real_tokens(batch)
    console.print(f"[bold]plan[/bold]: warm-up {tokens:.0f} tokens in {seconds:.1f} s")
    return tokens / seconds, peak_rss_mb() * 2**20


def _loss(job: Any, batch: dict[str, Any]) -> Any:
    from tunewright.training.trainer import SelectiveLossTrainer

    if job.trainer_class is SelectiveLossTrainer:
        # Only compute_loss is used; it needs no Trainer state without num_items_in_batch.
        trainer = SelectiveLossTrainer.__new__(SelectiveLossTrainer)
        return SelectiveLossTrainer.compute_loss(trainer, job.model, dict(batch))
    return job.model(**batch).loss


def _real_tokens(batch: dict[str, Any]) -> int:
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


def eta_seconds(config: Config, tokens: Tokens, hyper: Any, result: PlanResult) -> float:
    """Training tokens x epochs (or max_steps worth) at the measured speed, plus evaluations."""
    speed = result.tokens_per_s or 0.0
    if result.device == "cuda":
        speed *= result.processes  # one GPU each; on CPU the processes share the same cores
    elif result.processes > 1:
        result.notes.append("CPU: the processes share the cores, so more of them is not faster")
    train_tokens = tokens.total * hyper.epochs
    steps_per_epoch = -(-tokens.examples // hyper.global_batch)
    steps = steps_per_epoch * hyper.epochs
    if config.train.max_steps is not None:
        steps = config.train.max_steps
        train_tokens = steps * hyper.global_batch * tokens.mean
    every = hyper.eval_every
    evals = (hyper.epochs if every == "epoch" else steps // every) + 1  # + the final one
    eval_tokens = tokens.eval_total * evals * EVAL_COST
    return (train_tokens + eval_tokens) / speed if speed else 0.0


# ---------------------------------------------------------------------------------------------
# Output


def print_plan(result: PlanResult, out: Console, err: Console) -> None:
    """The memory table, whether it fits, the data's tokens and the ETA."""
    from rich.table import Table

    gb = 2**30
    table = Table("memory per device", "GB", title=f"{result.engine} on {result.device}")
    for name, size in result.memory.items():
        table.add_row(name, f"{size / gb:.2f}")
    table.add_row("[bold]total[/bold]", f"[bold]{result.per_device / gb:.2f}[/bold]")
    table.add_row("available", f"{result.available / gb:.2f}")
    out.print(table)
    colour = {"fits": "green", "tight": "yellow"}.get(result.fits, "red")
    out.print(f"[{colour}]{result.fits}[/{colour}]")
    for key, lever in result.levers.items():
        value = str(lever["value"]).lower() if isinstance(lever["value"], bool) else lever["value"]
        out.print(f"{key}: {value} ({lever['source']})")
    if result.fits != "fits":
        err.print(
            "[yellow]warning:[/yellow] this run may run out of memory: lower train.batch_size "
            "(raise train.grad_accum to keep the global batch), use train.method=qlora, or "
            "split the model over processes (train.distributed=fsdp)"
        )
        _print_suggestions(result, out)
    t, h = result.tokens, result.hyper
    out.print(
        f"data: {t.examples} examples, {t.total:,} tokens (mean {t.mean}, p95 {t.p95}); "
        f"micro-batch ~{t.batch_tokens} tokens, largest planned {t.peak_batch_tokens}; global "
        f"batch {h['batch_size']} x {h['grad_accum']} x {h['processes']} = {h['global_batch']}"
    )
    if result.eta_seconds is not None and result.tokens_per_s:
        out.print(
            f"speed {result.tokens_per_s:.0f} tokens/s (measured); ETA "
            f"{result.eta_seconds / 60:.1f} min for {h['epochs']} epoch(s); warm-up peak "
            f"RSS {(result.warmup_peak_rss or 0) / gb:.2f} GB"
        )
    for note in result.notes:
        out.print(f"note: {note}")


def _print_suggestions(result: PlanResult, out: Console) -> None:
    """e.g. `fits with train.gradient_checkpointing: true (+50% step time): 2.10 GB`."""
    for found in result.suggestions:
        levers = " + ".join(
            f"{key}: {str(value).lower() if isinstance(value, bool) else value}"
            for key, value in found["levers"].items()
        )
        out.print(
            f"fits with {levers} ({found['cost']}): {found['per_device'] / 2**30:.2f} GB",
            highlight=False,
        )
    if not result.suggestions:
        out.print(
            "no combination of gradient checkpointing, 8-bit AdamW and QLoRA fits: lower "
            "train.batch_size or data.max_seq_len, or split the model (train.distributed=fsdp)",
            highlight=False,
        )
