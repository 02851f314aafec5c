"""The training stage: prepared data + base model -> adapter (or full weights) in `<run>/train/`.

Read top to bottom: check the method can run, make sure the data stage is done, load the
tokenizer and verify the loss mask, build features, load and wrap the model, resolve `auto`
values, train with checkpoints and trackers, save the result atomically, plot the losses.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.data.records import Record, read_jsonl
from tunewright.errors import TunewrightError
from tunewright.runs import atomic_dir, read_manifest, stage_run

STAGE = "train"
LOSS_MASK_SAMPLE = 16  # examples whose labels are checked against the assistant spans


class TrainingDivergedError(TunewrightError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    output_dir: Path  # the adapter (or full model) folder
    metrics: dict[str, Any]


def train_model(
    config: Config, *, resume: bool = False, console: Console | None = None
) -> TrainResult:
    """Fine-tune `config.model` on the run's prepared data; see the module docstring."""
    console = console or Console(stderr=True)
    job = build_job(config, console)
    return run_job(config, job, resume=resume, console=console)


def build_job(config: Config, console: Console | None = None) -> Job:
    """Data, tokenizer and the wrapped model, ready to train; fails before any training when
    the method cannot run here or the loss mask is wrong."""
    console = console or Console(stderr=True)
    from tunewright.models import load_tokenizer, resolve_model
    from tunewright.training.model_setup import check_method_available

    check_method_available(config, _device())
    train_records, eval_records, data_files = _prepared_data(config, console)
    from transformers import set_seed

    set_seed(config.seed)  # adapter initialisation is random too
    folder = resolve_model(config.model.name)
    tokenizer = load_tokenizer(folder)
    if config.model.chat_template:
        tokenizer.chat_template = config.resolve(config.model.chat_template).read_text()
    if _is_encoder(folder):
        from tunewright.training.encoder import build_encoder_job

        job = build_encoder_job(config, folder, tokenizer, train_records, eval_records)
    else:
        job = _causal_job(config, folder, tokenizer, train_records, eval_records)
    job.inputs = data_files
    return job


def run_job(
    config: Config, job: Job, *, resume: bool = False, console: Console | None = None
) -> TrainResult:
    """Train a built job and write `<run>/train/`."""
    console = console or Console(stderr=True)
    with stage_run(config, STAGE, inputs=job.inputs) as run:
        return _run_job(config, job, run, resume, console)


# ---------------------------------------------------------------------------------------------
# Inputs


def _prepared_data(
    config: Config, console: Console
) -> tuple[list[Record], list[Record], list[Path]]:
    """The data stage's train/eval files, running the data stage first when it has not run
    for this data config."""
    from tunewright.data.prepare import STAGE as DATA
    from tunewright.data.prepare import prepare_data

    data_dir = config.run_dir / DATA
    manifest = read_manifest(data_dir)
    current = config.model_dump(mode="json")
    stale = (
        manifest is None
        or manifest["config"]["data"] != current["data"]
        or (manifest["config"]["model"]["name"] != config.model.name)
    )
    if stale:
        console.print("[bold]data[/bold]: preparing (no prepared data for this config yet)")
        prepare_data(config)
    files = [data_dir / "train.jsonl", data_dir / "eval.jsonl"]
    return read_jsonl(files[0]), read_jsonl(files[1]), files


def _is_encoder(folder: Path) -> bool:
    config = json.loads((folder / "config.json").read_text())
    architectures = config.get("architectures") or []
    return not any(a.endswith("ForCausalLM") for a in architectures) and config.get(
        "model_type"
    ) in ("bert", "roberta", "distilbert", "deberta-v2", "xlm-roberta", "mpnet", "electra")


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


# ---------------------------------------------------------------------------------------------
# The causal-LM job


@dataclass
class Job:
    """Everything a run needs, whichever kind of model: built by `_causal_job` or the encoder
    builder, consumed by `_run_job`."""

    model: Any
    tokenizer: Any
    train_features: list[dict[str, Any]]
    eval_features: list[dict[str, Any]]
    collator: Any
    trainer_class: Any
    n_params: int
    extra: dict[str, Any]
    inputs: list[Path] = field(default_factory=list)


def _causal_job(
    config: Config, folder: Path, tokenizer: Any, train: list[Record], evals: list[Record]
) -> Job:
    from tunewright.chat import verify_loss_mask
    from tunewright.models import count_parameters
    from tunewright.training.features import (
        PackedCollator,
        PaddedCollator,
        causal_features,
        count_loss_tokens,
    )
    from tunewright.training.model_setup import PROMPT_METHODS, load_base_for_training, wrap_model
    from tunewright.training.trainer import CountingTrainer, SelectiveLossTrainer

    if not config.train.train_on_prompt:
        sample = [r["messages"] for r in train[:LOSS_MASK_SAMPLE] if r["task"] != "preference"]
        verify_loss_mask(tokenizer, sample, tools=[r.get("tools") for r in train[: len(sample)]])
    max_len, on_prompt = config.data.max_seq_len, config.train.train_on_prompt
    train_features = causal_features(tokenizer, train, max_len, on_prompt)
    eval_features = causal_features(tokenizer, evals, max_len, on_prompt)
    model = wrap_model(config, load_base_for_training(config, folder), "CAUSAL_LM")
    packed = config.train.method not in PROMPT_METHODS
    return Job(
        model=model,
        tokenizer=tokenizer,
        train_features=train_features,
        eval_features=eval_features,
        collator=PackedCollator() if packed else PaddedCollator(tokenizer.pad_token_id),
        trainer_class=SelectiveLossTrainer if packed else CountingTrainer,
        n_params=count_parameters(folder) or 0,
        extra={
            "batching": "padding-free" if packed else "padded",
            "loss_tokens": count_loss_tokens(train_features),
        },
    )


# ---------------------------------------------------------------------------------------------
# Running a job


def _run_job(config: Config, job: Job, run: Any, resume: bool, console: Console) -> TrainResult:
    from tunewright.training.callbacks import last_complete_checkpoint
    from tunewright.training.defaults import resolve_hyper
    from tunewright.training.model_setup import trainable_summary
    from tunewright.training.plot import plot_loss

    hyper = resolve_hyper(config.train, job.n_params, len(job.train_features))
    _print_plan(console, config, hyper, job)
    checkpoints = run.dir / "checkpoints"
    metrics_path = run.output("metrics.jsonl")
    start_from = last_complete_checkpoint(checkpoints) if resume else None
    if resume and start_from is None:
        console.print("[yellow]--resume: no complete checkpoint, starting from scratch[/yellow]")
    _reset_outputs(run.dir, checkpoints, metrics_path, start_from)
    with _tracker_env(config, run.dir):
        trainer, guards = _build_trainer(config, job, hyper, checkpoints, metrics_path, console)
        if config.train.max_steps != 0:  # 0: keep the freshly initialised adapter (a baseline)
            trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
        if guards["divergence"].diverged_at is not None:
            last = last_complete_checkpoint(checkpoints)
            raise TrainingDivergedError(
                f"loss became NaN/inf at step {guards['divergence'].diverged_at}; stopped",
                hint=f"Last good checkpoint: {last or 'none'}. Lower train.learning_rate, or use "
                "precision fp32; resume with --resume after changing it.",
            )
        final_eval = trainer.evaluate() if job.eval_features else {}
    output = run.output("model" if config.train.method == "full" else "adapter")
    with atomic_dir(output) as tmp:
        job.model.save_pretrained(tmp)
        job.tokenizer.save_pretrained(tmp)
    plot_loss(metrics_path, run.output("loss.png"), f"{config.name}: {config.train.method}")
    metrics = _summary(trainer, final_eval, guards, hyper, job)
    run.extra.update(
        {
            "hyperparameters": hyper.as_dict(),
            "metrics": metrics,
            **trainable_summary(job.model),
            **job.extra,
            "resumed_from": str(start_from) if start_from else None,
        }
    )
    return TrainResult(output, metrics)


def _build_trainer(
    config: Config,
    job: Job,
    hyper: Any,
    checkpoints: Path,
    metrics_path: Path,
    console: Console,
) -> tuple[Any, dict[str, Any]]:
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback

    from tunewright.training.args import training_arguments
    from tunewright.training.callbacks import (
        CheckpointMark,
        DivergenceGuard,
        MetricsLogCallback,
        OverfitWarning,
        ProgressCallback,
    )

    args = training_arguments(config, hyper, checkpoints, has_eval=bool(job.eval_features))
    trainer = job.trainer_class(
        model=job.model,
        args=args,
        train_dataset=job.train_features,
        eval_dataset=job.eval_features or None,
        data_collator=job.collator,
    )
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace it
    guards = {"divergence": DivergenceGuard(), "overfit": OverfitWarning(console)}
    tokens = lambda: trainer.tokens_seen  # noqa: E731
    trainer.add_callback(ProgressCallback(tokens, console))
    trainer.add_callback(MetricsLogCallback(metrics_path, tokens))
    trainer.add_callback(CheckpointMark())
    for guard in guards.values():
        trainer.add_callback(guard)
    if config.train.early_stopping_patience and job.eval_features:
        trainer.add_callback(EarlyStoppingCallback(config.train.early_stopping_patience))
    return trainer, guards


def _reset_outputs(stage_dir: Path, checkpoints: Path, metrics: Path, start: Path | None) -> None:
    """A fresh run forgets earlier checkpoints and logs; a resumed one keeps the log up to its
    checkpoint, so the steps redone after it are not logged twice."""
    if start is None:
        shutil.rmtree(checkpoints, ignore_errors=True)
        metrics.unlink(missing_ok=True)
        return
    step = int(start.name.split("-")[1])
    if metrics.is_file():
        kept = [
            line
            for line in metrics.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step
        ]
        metrics.write_text("".join(line + "\n" for line in kept))


def _summary(trainer: Any, final_eval: dict, guards: dict, hyper: Any, job: Job) -> dict[str, Any]:
    history = trainer.state.log_history
    losses = [e["loss"] for e in history if "loss" in e]
    runtime = next((e for e in reversed(history) if "train_runtime" in e), {})
    seconds = runtime.get("train_runtime") or 0.0
    return {
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "eval_loss": final_eval.get("eval_loss"),
        "train_seconds": round(seconds, 2),
        "tokens_seen": trainer.tokens_seen,
        "tokens_per_s": round(trainer.tokens_seen / seconds, 2) if seconds else None,
        "overfitting_warning": guards["overfit"].warning,
        "best_checkpoint": trainer.state.best_model_checkpoint,
    }


def _print_plan(console: Console, config: Config, hyper: Any, job: Job) -> None:
    from tunewright.training.model_setup import trainable_summary

    counts = trainable_summary(job.model)
    values = ", ".join(f"{k} {getattr(hyper, k)} ({hyper.sources[k]})" for k in hyper.sources)
    console.print(
        f"[bold]train[/bold]: {config.train.method} on {config.model.name}, "
        f"{len(job.train_features)} train / {len(job.eval_features)} eval examples, "
        f"{counts['trainable_parameters']:,} of {counts['total_parameters']:,} parameters "
        f"trainable\n  {values}; global batch {hyper.global_batch}"
    )


@contextlib.contextmanager
def _tracker_env(config: Config, stage_dir: Path) -> Iterator[None]:
    """Point the trackers at the run folder, offline where no account is configured; the
    environment is restored afterwards."""
    env = {"TENSORBOARD_LOGGING_DIR": str(stage_dir / "tensorboard")}
    if "wandb" in config.train.report_to:
        env.update({"WANDB_DIR": str(stage_dir), "WANDB_PROJECT": "tunewright"})
        if not os.environ.get("WANDB_API_KEY"):
            env["WANDB_MODE"] = "offline"
    if "mlflow" in config.train.report_to:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{stage_dir / 'mlflow.db'}"
        env.update({"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "tunewright"})
        _ensure_mlflow_experiment(uri, stage_dir / "mlruns")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ensure_mlflow_experiment(uri: str, artifacts: Path) -> None:
    """Create the experiment with its artifacts in the run folder (MLflow's default is
    ./mlruns under whatever the working directory happens to be)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name("tunewright") is None:
        mlflow.create_experiment("tunewright", artifact_location=artifacts.as_uri())
