"""`tunewright plan`: memory per device and training time, estimated before training.

Read top to bottom: prepare the data (as `train` would), render every training example to get
its real token length, build the model on the meta device (no weights loaded) to count its
parameters by dtype and the trainable ones, add up memory per device, compare it with what the
device has, then time a few real training steps on the real model to turn the dataset's token
count into an ETA.

Memory per device, in bytes:
  runtime      the process itself (Python, torch, tokenizer, data); measured here, on CPU
  weights      frozen base parameters x their dtype size (NF4 for QLoRA: ~0.52 byte each)
  adapter      trainable parameters x their dtype size (PEFT keeps adapters in fp32)
  gradients    trainable parameters x their dtype size
  optimizer    AdamW: 2 fp32 moments per trainable parameter
  activations  layers x tokens of the largest micro-batch x hidden size x ACTIVATION_VALUES
               x activation bytes
  logits       loss-carrying positions x vocabulary x 4 bytes x LOGIT_COPIES
The largest micro-batch is batch size x the 95th-percentile example length (packed batches
hold exactly their tokens; padded ones hold batch x their longest example).

Calibration (2-core CPU, torch 2.13, SmolLM2-135M, LoRA r16 all-linear, dropout 0.05, fp32):
one real step (selective loss, backward, AdamW) on packed batches of 256/512/1024/2048 tokens
raised the process's peak RSS by 0.70/1.55/3.28/6.06 GB, linear in the tokens (flash attention
on CPU keeps no token x token matrix). Taking out the logits term leaves 38-45 (mean 42)
hidden-size fp32 values per token per layer: the saved inputs of every projection, the LoRA
dropout copies and masks, the MLP intermediates, and what glibc keeps of freed blocks.
Other methods and models reuse that coefficient, so treat their estimate as approximate.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.device import detect_device
from tunewright.errors import TunewrightError

ACTIVATION_VALUES = 42  # hidden-size values kept per token per layer (calibrated, see above)
LOGIT_COPIES = 3  # fp32 logits, their log-softmax and its gradient, at each loss position
ADAM_BYTES = 8  # two fp32 moments per trainable parameter
NF4_BYTES = 0.516  # 4 bits + double-quantised absmax per 64-weight block
CUDA_CONTEXT = 600 * 2**20  # the CUDA context and kernels, before any tensor
FITS_SHARE = 0.9  # leave 10% of the device for fragmentation and other processes
WARMUP_STEPS = 3  # the first is discarded (allocation, one-time setup)
EVAL_COST = 1 / 3  # an eval token costs a forward only: about a third of a training token


@dataclass
class Shapes:
    """What the meta-device model tells about the run."""

    layers: int
    hidden: int
    vocab: int
    frozen_bytes: float
    trainable_params: int
    trainable_bytes: int
    total_params: int


@dataclass
class Tokens:
    """Token counts of the rendered training (and eval) examples."""

    examples: int
    total: int
    loss_total: int
    mean: float
    p95: int
    eval_total: int
    batch_tokens: int  # a typical micro-batch
    peak_batch_tokens: int  # the largest micro-batch planned for
    peak_loss_tokens: int


@dataclass
class PlanResult:
    device: str
    processes: int
    engine: str
    memory: dict[str, float]  # component -> bytes per device
    per_device: float
    available: float
    fits: str  # fits, tight, does not fit
    tokens: Tokens
    hyper: dict[str, Any]
    tokens_per_s: float | None = None
    eta_seconds: float | None = None
    warmup_peak_rss: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_training(
    config: Config, *, processes: int = 1, warmup: bool = True, console: Console | None = None
) -> PlanResult:
    """Estimate memory per device and, after a short measured warm-up, the training time."""
    from tunewright.data.prepare import ensure_prepared
    from tunewright.models import load_tokenizer, resolve_model
    from tunewright.training.defaults import resolve_hyper

    console = console or Console(stderr=True)
    data_dir = ensure_prepared(config, console)
    folder = resolve_model(config.model.name)
    tokenizer = load_tokenizer(folder)
    if config.model.chat_template:
        tokenizer.chat_template = config.resolve(config.model.chat_template).read_text()
    shapes = meta_shapes(config, folder)
    hyper = resolve_hyper(config.train, shapes.total_params, 0, processes=processes)
    tokens = token_counts(config, tokenizer, data_dir, hyper)
    hyper = resolve_hyper(config.train, shapes.total_params, tokens.examples, processes=processes)
    result = estimate_memory(config, shapes, tokens, processes)
    result.hyper = hyper.as_dict()
    if result.fits == "does not fit":
        result.notes.append("no warm-up: the run would not fit in memory")
    elif warmup:
        result.tokens_per_s, result.warmup_peak_rss = measure_throughput(config, console)
        result.eta_seconds = eta_seconds(config, tokens, hyper, result)
    return result


# ---------------------------------------------------------------------------------------------
# Shapes and tokens


def meta_shapes(config: Config, folder: Path) -> Shapes:
    """Parameter counts by dtype from the model built on the meta device (nothing loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunewright.training.model_setup import compute_dtype, wrap_model

    model_config = AutoConfig.from_pretrained(folder)
    if not any(a.endswith("ForCausalLM") for a in model_config.architectures or []):
        raise TunewrightError(
            f"tunewright plan estimates causal language models; {config.model.name} is not one",
            hint="Train a short run (train.max_steps=5) and read peak_rss_mb in its manifest.",
        )
    dtype = compute_dtype(config)
    load_dtype = torch.float32 if dtype == torch.float16 else dtype
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(model_config, dtype=load_dtype)
    quantised = _quantised_weights(base) if config.train.method == "qlora" else set()
    model = wrap_model(config, base, "CAUSAL_LM")
    frozen = trainable = trainable_bytes = total = 0.0
    for name, parameter in model.named_parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
            trainable_bytes += parameter.numel() * parameter.element_size()
        elif _base_name(name) in quantised:
            frozen += parameter.numel() * NF4_BYTES
        else:
            frozen += parameter.numel() * parameter.element_size()
    text = model_config.get_text_config()
    return Shapes(
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        vocab=text.vocab_size,
        frozen_bytes=frozen,
        trainable_params=int(trainable),
        trainable_bytes=int(trainable_bytes),
        total_params=int(total),
    )


def _quantised_weights(model: Any) -> set[str]:
    """Weights bitsandbytes stores in 4 bits: every Linear but the LM head."""
    import torch

    head = model.get_output_embeddings()
    return {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }


def _base_name(peft_name: str) -> str:
    """`base_model.model.model.layers.0.q_proj.base_layer.weight` ->
    `model.layers.0.q_proj.weight`, the name in the unwrapped model."""
    return peft_name.removeprefix("base_model.model.").replace(".base_layer.", ".")


def token_counts(config: Config, tokenizer: Any, data_dir: Path, hyper: Any) -> Tokens:
    """Rendered lengths of the prepared examples, through the same code training uses."""
    from tunewright.files import read_jsonl
    from tunewright.methods import PROMPT_METHODS
    from tunewright.training.features import causal_features

    max_len, on_prompt = config.data.max_seq_len, config.train.train_on_prompt
    train = causal_features(tokenizer, read_jsonl(data_dir / "train.jsonl"), max_len, on_prompt)
    evals = causal_features(tokenizer, read_jsonl(data_dir / "eval.jsonl"), max_len, on_prompt)
    lengths = sorted(len(f["input_ids"]) for f in train)
    loss = sum(sum(1 for t in f["labels"] if t != -100) for f in train)
    p95 = lengths[min(len(lengths) - 1, round(0.95 * (len(lengths) - 1)))]
    mean = statistics.fmean(lengths)
    extra = config.train.num_virtual_tokens if config.train.method in PROMPT_METHODS else 0
    peak = hyper.batch_size * (p95 + extra)
    padded = config.train.method in PROMPT_METHODS
    return Tokens(
        examples=len(train),
        total=sum(lengths),
        loss_total=loss,
        mean=round(mean, 1),
        p95=p95,
        eval_total=sum(len(f["input_ids"]) for f in evals),
        batch_tokens=round(hyper.batch_size * mean),
        peak_batch_tokens=peak,
        # Padded batches (plain HF loss) score every position; packed ones only labelled ones.
        peak_loss_tokens=peak if padded else round(peak * loss / max(sum(lengths), 1)),
    )


# ---------------------------------------------------------------------------------------------
# Memory


def estimate_memory(config: Config, shapes: Shapes, tokens: Tokens, processes: int) -> PlanResult:
    """Bytes per device by component, split the way the engine splits them."""
    from tunewright.training.model_setup import compute_dtype

    device = _device_name()
    act_bytes = 4 if str(compute_dtype(config)) == "torch.float32" else 2
    memory: dict[str, float] = {
        "runtime": _runtime_bytes(device),
        "weights": shapes.frozen_bytes,
        "adapter": float(shapes.trainable_bytes),
        "gradients": float(shapes.trainable_bytes),
        "optimizer": float(shapes.trainable_params * ADAM_BYTES),
        "activations": float(
            shapes.layers * tokens.peak_batch_tokens * shapes.hidden * ACTIVATION_VALUES * act_bytes
        ),
        "logits": float(tokens.peak_loss_tokens * shapes.vocab * 4 * LOGIT_COPIES),
    }
    engine = config.train.distributed if processes > 1 else "single"
    _split_for_engine(memory, config, engine, processes, shapes)
    per_device = sum(memory.values())
    available = _available_bytes(device, processes)
    fits = (
        "fits"
        if per_device <= FITS_SHARE * available
        else "tight"
        if per_device <= available
        else "does not fit"
    )
    return PlanResult(device, processes, engine, memory, per_device, available, fits, tokens, {})


def _split_for_engine(
    memory: dict[str, float], config: Config, engine: str, processes: int, shapes: Shapes
) -> None:
    """Sharding engines keep 1/processes of what they shard (plus one gathered layer)."""
    sharded: tuple[str, ...] = ()
    if engine == "fsdp" and config.train.fsdp.sharding != "no_shard":
        sharded = ("weights", "adapter", "gradients", "optimizer")
        if config.train.fsdp.sharding == "shard_grad_op":
            sharded = ("gradients", "optimizer")  # parameters stay gathered through backward
    elif engine == "deepspeed":
        stage = config.train.deepspeed.stage
        sharded = (("optimizer",), ("optimizer",), ("gradients", "optimizer"))[min(stage, 2)]
        sharded = () if stage == 0 else sharded
        if stage == 3:
            sharded = ("weights", "adapter", "gradients", "optimizer")
    elif engine in ("ddp", "fsdp"):  # DDP keeps a second copy of the gradients in its buckets
        memory["gradients"] *= 2
    for key in sharded:
        memory[key] /= processes
    if "weights" in sharded:
        gathered = (shapes.frozen_bytes + shapes.trainable_bytes) / max(shapes.layers, 1)
        memory["weights"] += gathered  # the one layer being computed, whole


def _device_name() -> str:
    # The Trainer uses a CUDA GPU or else the CPU, Apple GPUs included (args.py: use_cpu).
    return "cuda" if detect_device() == "cuda" else "cpu"


def _runtime_bytes(device: str) -> float:
    """CPU: this process's resident memory now (libraries, tokenizer, data: what `train` holds
    before its weights). GPU: the CUDA context."""
    import psutil
    import transformers.trainer  # noqa: F401 - training holds it (and accelerate): ~85 MB

    return CUDA_CONTEXT if device == "cuda" else float(psutil.Process().memory_info().rss)


def _available_bytes(device: str, processes: int) -> float:
    """Memory one process may use: a GPU's free memory, or this machine's free RAM shared by
    its processes (counting what this process holds itself)."""
    import psutil

    if device == "cuda":
        import torch

        return float(torch.cuda.mem_get_info()[0])
    own = psutil.Process().memory_info().rss
    return float(psutil.virtual_memory().available + own) / processes


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
    every = config.train.eval_every
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
    if result.fits != "fits":
        err.print(
            "[yellow]warning:[/yellow] this run may run out of memory: lower train.batch_size "
            "(raise train.grad_accum to keep the global batch), use train.method=qlora, or "
            "split the model over processes (train.distributed=fsdp)"
        )
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
