"""The training stage: prepared data + base model -> adapter (or full weights) in `<run>/train/`.

Read top to bottom: join the other processes (if any), check the method can run, make sure the
data stage is done, load the tokenizer and verify the loss mask, build features, load and wrap
the model, resolve `auto` values, train with checkpoints and trackers, save the result
atomically, plot the losses.

Several processes (`tunewright train --nproc N`, torchrun, accelerate launch) all run this same
flow; rank 0 alone writes the run folder: data stage, metrics, plots, final weights, manifest.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.data.records import Record
from tunewright.device import detect_device
from tunewright.errors import TunewrightError
from tunewright.files import atomic_dir, read_jsonl, write_jsonl
from tunewright.runs import (
    ADAPTER,
    FULL_MODEL,
    TRAIN,
    StageRun,
    data_split,
    stage_dir,
    stage_run,
)
from tunewright.training.distributed import DistContext, barrier, gather, run_on_main
from tunewright.training.job import Job

STAGE = TRAIN


class TrainingDivergedError(TunewrightError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    output_dir: Path  # the adapter (or full model) folder
    metrics: dict[str, Any]
    is_main: bool = True  # rank 0, the process that wrote the run folder


def train_model(
    config: Config, *, resume: bool = False, console: Console | None = None
) -> TrainResult:
    """Fine-tune `config.model` on the run's prepared data; see the module docstring."""
    from tunewright.training.distributed import init_distributed, leave_distributed

    context = init_distributed()
    # Only rank 0 talks; the others run the same flow silently.
    console = console or Console(stderr=True)
    if not context.is_main:
        console = Console(stderr=True, quiet=True)
    try:
        job = build_job(config, console, context)
        result = run_job(config, job, resume=resume, console=console, context=context)
        barrier(context)  # nobody leaves while a peer may still be talking to it
        return result
    finally:
        leave_distributed(context)


def build_job(
    config: Config, console: Console | None = None, context: DistContext | None = None
) -> Job:
    """Data, tokenizer and the wrapped model, ready to train; fails before any training when
    the method cannot run here or the loss mask is wrong."""
    console = console or Console(stderr=True)
    context = context or DistContext()
    from tunewright.models import load_base_tokenizer, resolve_model
    from tunewright.training.levers import check_levers_available
    from tunewright.training.model_setup import check_method_available

    check_method_available(config, detect_device())
    check_levers_available(config, detect_device())
    train_records, eval_records, data_files = _prepared_data(config, console, context)
    from transformers import set_seed

    set_seed(config.seed)  # adapter initialisation is random too
    folder = resolve_model(config.model.name)
    tokenizer, template = load_base_tokenizer(config)
    if template.note:
        console.print(f"[yellow]note:[/yellow] model.chat_template: {template.note}")
    if config.train.objective != "sft":
        from tunewright.training.preference import ObjectiveDataError, build_preference_job

        if _is_encoder(folder):
            raise ObjectiveDataError(
                f"train.objective: {config.train.objective} trains causal language models; "
                f"{config.model.name} is an encoder"
            )

        build = build_preference_job
        if config.train.objective == "grpo":
            from tunewright.training.grpo import build_grpo_job as build
        job = build(config, folder, tokenizer, train_records, eval_records, context)
    elif _is_encoder(folder):
        from tunewright.training.encoder import build_encoder_job

        job = build_encoder_job(config, folder, tokenizer, train_records, eval_records)
    else:
        from tunewright.training.causal import build_causal_job

        job = build_causal_job(config, folder, tokenizer, train_records, eval_records, context)
    job.inputs = data_files
    job.extra["chat_template"] = template.as_dict()  # which template, so the manifest says
    return job


def run_job(
    config: Config,
    job: Job,
    *,
    resume: bool = False,
    console: Console | None = None,
    context: DistContext | None = None,
) -> TrainResult:
    """Train a built job and write `<run>/train/` (from rank 0 only)."""
    console = console or Console(stderr=True)
    context = context or DistContext()
    if context.is_main:
        with stage_run(config, STAGE, inputs=job.inputs) as run:
            return _run_job(config, job, run, resume, console, context)
    # The other ranks get the same paths but never touch the manifest.
    replica = StageRun(config=config, stage=STAGE, inputs=job.inputs, dir=stage_dir(config, STAGE))
    return _run_job(config, job, replica, resume, console, context)


# ---------------------------------------------------------------------------------------------
# Inputs


def _prepared_data(
    config: Config, console: Console, context: DistContext
) -> tuple[list[Record], list[Record], list[Path]]:
    """The data stage's train/eval files. Rank 0 runs the data stage first when it has not run
    for this data config; the other ranks wait for it and read what it wrote."""
    from tunewright.data.prepare import ensure_prepared

    run_on_main(context, lambda: ensure_prepared(config, console))
    files = [data_split(config, "train"), data_split(config, "eval")]
    return read_jsonl(files[0]), read_jsonl(files[1]), files


def _is_encoder(folder: Path) -> bool:
    config = json.loads((folder / "config.json").read_text())
    architectures = config.get("architectures") or []
    return not any(a.endswith("ForCausalLM") for a in architectures) and config.get(
        "model_type"
    ) in ("bert", "roberta", "distilbert", "deberta-v2", "xlm-roberta", "mpnet", "electra")


# ---------------------------------------------------------------------------------------------
# Running a job


def _run_job(
    config: Config, job: Job, run: StageRun, resume: bool, console: Console, context: DistContext
) -> TrainResult:
    from tunewright.training.defaults import resolve_hyper
    from tunewright.training.engines import engine_report, full_state_dict, plan_engine
    from tunewright.training.levers import lever_record
    from tunewright.training.model_setup import resolve_precision, trainable_summary
    from tunewright.training.plot import PREFERENCE_PLOTS, plot_loss, plot_rewards
    from tunewright.training.trackers import tracker_env

    plan = plan_engine(config, context)
    hyper = resolve_hyper(
        config.train, job.n_params, len(job.train_features), processes=context.world_size
    )
    _print_plan(console, config, hyper, job, plan)
    checkpoints = run.dir / "checkpoints"
    metrics_path = run.output("metrics.jsonl")
    start_from = run_on_main(
        context, lambda: _start_point(checkpoints, metrics_path, resume, console)
    )
    with tracker_env(config, run.dir, main=context.is_main):
        trainer, watch = _build_trainer(
            config, job, hyper, checkpoints, metrics_path, console, plan, context
        )
        if config.train.max_steps != 0:  # 0: keep the freshly initialised adapter (a baseline)
            trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
        if watch.divergence.diverged_at is not None:
            last = run_on_main(context, lambda: last_checkpoint(checkpoints))
            raise TrainingDivergedError(
                f"loss became NaN/inf at step {watch.divergence.diverged_at}; stopped",
                hint=f"Last good checkpoint: {last or 'none'}. Lower train.learning_rate, or use "
                "precision fp32; resume with --resume after changing it.",
            )
        final_eval, watch.final_eval_seconds = _final_eval(trainer, job)
    trained = config.train.max_steps != 0
    engine = _check_engine(engine_report(trainer, context, plan), plan, console, trained)
    started = time.perf_counter()
    weights = full_state_dict(trainer, engine["engine"])  # every rank takes part
    watch.final_save_seconds = time.perf_counter() - started
    peaks = gather(context, peak_rss_mb())
    output = run.output(FULL_MODEL if config.train.method == "full" else ADAPTER)
    if context.is_main:
        started = time.perf_counter()
        _save_weights(output, job, weights)
        watch.final_save_seconds += time.perf_counter() - started
        title = f"{config.name}: {config.train.method}"
        plot_loss(metrics_path, run.output("loss.png"), title)
        if config.train.objective in PREFERENCE_PLOTS:
            plot_rewards(
                metrics_path, run.output("rewards.png"), f"{title}, {config.train.objective}"
            )
    metrics = _summary(trainer, final_eval, watch, job)
    run.extra.update(
        {
            "hyperparameters": hyper.as_dict(),
            "levers": lever_record(job.levers),
            "precision": resolve_precision(config).as_dict(),
            "metrics": metrics,
            **trainable_summary(job.model),
            **job.extra,
            "distributed": engine,
            "peak_rss_mb": peaks[0],  # this process's high-water mark, loading included
            **({"peak_rss_mb_per_rank": peaks} if context.distributed else {}),
            "resumed_from": str(start_from) if start_from else None,
        }
    )
    return TrainResult(output, metrics, is_main=context.is_main)


def _start_point(
    checkpoints: Path, metrics_path: Path, resume: bool, console: Console
) -> Path | None:
    """Rank 0 picks the checkpoint to resume from and clears what a fresh run forgets."""
    start_from = last_checkpoint(checkpoints) if resume else None
    if resume and start_from is None:
        console.print("[yellow]--resume: no complete checkpoint, starting from scratch[/yellow]")
    _reset_outputs(checkpoints, metrics_path, start_from)
    return start_from


def _final_eval(trainer: Any, job: Job) -> tuple[dict[str, Any], float]:
    """The eval metrics of the weights being saved, and the seconds spent on them now. The
    Trainer has usually evaluated those weights already (at the last step, or at the best
    checkpoint it reloaded at the end); only when it has not is the eval split run once more."""
    if not job.eval_features:
        return {}, 0.0
    state = trainer.state
    step = state.global_step
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint:
        step = int(Path(state.best_model_checkpoint).name.split("-")[-1])
    done = [e for e in state.log_history if "eval_loss" in e and e.get("step") == step]
    if done:
        return done[-1], 0.0
    started = time.perf_counter()
    metrics = trainer.evaluate()
    return metrics, time.perf_counter() - started


def last_checkpoint(checkpoints: Path) -> Path | None:
    from tunewright.training.callbacks import last_complete_checkpoint

    return last_complete_checkpoint(checkpoints)


def _check_engine(
    report: dict[str, Any], plan: Any, console: Console, trained: bool
) -> dict[str, Any]:
    """Say so when the engine that ran is not the one the run asked for (nothing is wrapped
    when no step ran)."""
    if trained and report["engine"] != plan.engine:
        warning = f"asked for {plan.engine}, but {report['engine']} ran"
        report["note"] = "; ".join(filter(None, [report.get("note"), warning]))
        console.print(f"[yellow]warning:[/yellow] train.distributed: {warning}")
    return report


def _save_weights(output: Path, job: Job, weights: dict[str, Any] | None) -> None:
    """The adapter (or full model) and tokenizer, as plain HF files; `weights` is the
    consolidated state dict when the engine had split the model."""
    with atomic_dir(output) as tmp:
        if weights is None:
            job.model.save_pretrained(tmp)
        else:
            job.model.save_pretrained(tmp, state_dict=weights)
        job.tokenizer.save_pretrained(tmp)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (ru_maxrss is KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


@dataclass
class Watchers:
    """The callbacks whose findings end up in the summary."""

    divergence: Any
    overfit: Any
    log: Any
    clock: Any
    final_eval_seconds: float = 0.0  # the evaluation after training, when one was needed
    final_save_seconds: float = 0.0  # gathering and writing the final weights


def _build_trainer(
    config: Config,
    job: Job,
    hyper: Any,
    checkpoints: Path,
    metrics_path: Path,
    console: Console,
    plan: Any,
    context: DistContext,
) -> tuple[Any, Watchers]:
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback

    from tunewright.training.args import training_arguments
    from tunewright.training.callbacks import (
        CheckpointMark,
        DivergenceGuard,
        LoopClock,
        MetricsLogCallback,
        OverfitWarning,
        ProgressCallback,
    )
    from tunewright.training.engines import engine_arguments

    args = training_arguments(
        config,
        hyper,
        checkpoints,
        has_eval=bool(job.eval_features),
        padded=job.extra.get("batching") != "padding-free",
        engine=engine_arguments(config, plan, context, job.model),
        every_parameter_used=job.every_parameter_used,
        liger=bool(job.levers["liger"].value) if job.levers else False,
        args_class=job.args_class,
        objective=job.objective_args,
    )
    trainer = job.trainer_class(
        model=job.model,
        args=args,
        train_dataset=job.train_features,
        eval_dataset=job.eval_features or None,
        data_collator=job.collator,
    )
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace it
    # Input tokens of all processes, counted by the Trainer.
    clock = LoopClock(lambda: trainer.state.num_input_tokens_seen)
    watch = Watchers(
        DivergenceGuard(), OverfitWarning(console), MetricsLogCallback(metrics_path, clock), clock
    )
    # The clock first: the progress bar and the metrics log read it at the same events.
    for callback in (clock, ProgressCallback(clock, console), watch.log, CheckpointMark()):
        trainer.add_callback(callback)
    trainer.add_callback(watch.divergence)
    trainer.add_callback(watch.overfit)
    if config.train.early_stopping_patience and job.eval_features:
        trainer.add_callback(EarlyStoppingCallback(config.train.early_stopping_patience))
    return trainer, watch


def _reset_outputs(checkpoints: Path, metrics: Path, start: Path | None) -> None:
    """A fresh run forgets earlier checkpoints and logs; a resumed one keeps the log up to its
    checkpoint, so the steps redone after it are not logged twice."""
    if start is None:
        shutil.rmtree(checkpoints, ignore_errors=True)
        metrics.unlink(missing_ok=True)
        return
    step = int(start.name.split("-")[1])
    if metrics.is_file():
        write_jsonl(metrics, [entry for entry in read_jsonl(metrics) if entry["step"] <= step])


def _summary(trainer: Any, final_eval: dict, watch: Watchers, job: Job) -> dict[str, Any]:
    history = trainer.state.log_history
    losses = [e["loss"] for e in history if "loss" in e]
    runtime = next((e for e in reversed(history) if "train_runtime" in e), {})
    clock = watch.clock  # this session's loop: a resumed run counts from its checkpoint
    return {
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "eval_loss": final_eval.get("eval_loss"),
        # the whole `trainer.train()` call: loop, evaluations and checkpoints
        "train_seconds": round(runtime.get("train_runtime") or 0.0, 2),
        "train_loop_seconds": round(clock.loop_seconds, 2),
        "eval_seconds": round(clock.eval_seconds + watch.final_eval_seconds, 2),
        "save_seconds": round(clock.save_seconds + watch.final_save_seconds, 2),
        "tokens_seen": clock.tokens,
        "tokens_per_s": clock.tokens_per_s,  # over the loop alone, as the progress bar shows
        "overfitting_warning": watch.overfit.warning,
        "best_checkpoint": trainer.state.best_model_checkpoint,
    }


def _print_plan(console: Console, config: Config, hyper: Any, job: Job, plan: Any) -> None:
    from tunewright.training.levers import describe as describe_levers
    from tunewright.training.model_setup import resolve_precision, trainable_summary

    counts = trainable_summary(job.model)
    values = ", ".join(f"{k} {getattr(hyper, k)} ({hyper.sources[k]})" for k in hyper.sources)
    # e.g. 4 per device x 2 accumulation x 2 processes = 16 examples per optimizer step
    batch = (
        f"global batch {hyper.batch_size} per device x {hyper.grad_accum} accumulation x "
        f"{hyper.processes} process(es) = {hyper.global_batch}"
    )
    engine = "" if plan.engine == "single" else f"; engine {plan.engine}"
    note = f" ({plan.note})" if plan.note else ""
    console.print(
        f"[bold]train[/bold]: {config.train.method} on {config.model.name}, "
        f"{len(job.train_features)} train / {len(job.eval_features)} eval examples, "
        f"{counts['trainable_parameters']:,} of {counts['total_parameters']:,} parameters "
        f"trainable\n  {values}\n  {batch}{engine}{note}\n  "
        f"{resolve_precision(config).describe()}\n  {describe_levers(job.levers)}"
        + _describe_objective(job)
    )


def _describe_objective(job: Job) -> str:
    """e.g. "objective dpo: beta 0.1 (auto: dpo's usual value), loss_type sigmoid (...)"."""
    options = job.extra.get("preference") or job.extra.get("grpo")
    if options is None:
        return ""
    values = ", ".join(f"{k} {v['value']} ({v['source']})" for k, v in options.items())
    rewards = " + ".join(f"{r['weight']:g} x {r['name']}" for r in job.extra.get("rewards", []))
    return f"\n  objective {job.extra['objective']}: {values}" + (
        f"\n  reward = {rewards}" if rewards else ""
    )
