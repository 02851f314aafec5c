"""The memory model of a training run, per device, before anything is loaded: what `tunewright
plan` prints, what `train.gradient_checkpointing: auto` asks, and which memory levers
(`training.levers`) would make a run fit.

Memory per device, in bytes:
  runtime      the process itself (Python, torch, tokenizer, data); measured here, on CPU
  weights      frozen base parameters x their dtype size (NF4 for QLoRA: ~0.52 byte each)
  adapter      trainable parameters x their dtype size (PEFT keeps adapters in fp32)
  gradients    trainable parameters x their dtype size
  optimizer    AdamW: 2 fp32 moments per trainable parameter (8-bit AdamW: 2 bytes; Adafactor:
               a row and a column vector per matrix)
  activations  layers x tokens of the largest micro-batch x hidden size x ACTIVATION_VALUES
               x activation bytes; with gradient checkpointing, each layer keeps only its input
               (CHECKPOINT_VALUES) and one layer at a time holds the full set while it is
               recomputed: tokens x hidden x bytes x (layers x CHECKPOINT_VALUES +
               ACTIVATION_VALUES)
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
The checkpointed estimate is derived from that, not calibrated.

A run that does not fit gets the combinations of memory levers (`training.levers`) that make it
fit in this same model, each with its cost in time: gradient checkpointing recomputes every
layer's forward once more in the backward pass, about +1/3 of a step that also computes weight
gradients (backward ~ 2 forwards) and +1/2 of an adapter step (frozen weights: backward ~ 1
forward); 8-bit AdamW's step is slower on CPU (measured, see BNB8_CPU_SECONDS).
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.device import detect_device
from tunewright.errors import TunewrightError
from tunewright.training.levers import NO_CHECKPOINTING, Lever, resolve_optimizer

ACTIVATION_VALUES = 42  # hidden-size values kept per token per layer (calibrated, see above)
LOGIT_COPIES = 3  # fp32 logits, their log-softmax and its gradient, at each loss position
ADAM_BYTES = 8  # two fp32 moments per trainable parameter
NF4_BYTES = 0.516  # 4 bits + double-quantised absmax per 64-weight block
CUDA_CONTEXT = 600 * 2**20  # the CUDA context and kernels, before any tensor
FITS_SHARE = 0.9  # leave 10% of the device for fragmentation and other processes
CHECKPOINT_VALUES = 1  # hidden-size values a checkpointed layer keeps per token: its input
# Optimizer state bytes per trainable parameter (Adafactor: counted per shape, see Shapes).
BNB8_BYTES = 2  # bitsandbytes: two 8-bit moments (plus a float per 2048-value block)
OPTIMIZER_BYTES = {
    "adamw": ADAM_BYTES,
    "adamw_fused": ADAM_BYTES,
    "adamw_8bit": BNB8_BYTES,
    "paged_adamw_8bit": BNB8_BYTES,
}
# bitsandbytes 0.50's 8-bit AdamW step on the 2-core development CPU: 0.27 s against torch
# AdamW's 0.10 s for 4.9M fp32 parameters, so +0.035 s per million parameters per step.
BNB8_CPU_SECONDS = 0.035e-6
# Where `plan` and `train.gradient_checkpointing: auto` read the memory of the device (one GPU,
# or the machine's RAM) from, in GB, instead of asking it: to plan for another machine.
MEMORY_ENV = "TUNEWRIGHT_MEMORY_GB"


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
    adafactor_bytes: float = 0.0  # Adafactor's factored second moments of the trainable ones


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
    levers: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> value and source
    suggestions: list[dict[str, Any]] = field(default_factory=list)  # what would make it fit

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Shapes and tokens


def meta_shapes(config: Config, folder: Path) -> Shapes:
    """Parameter counts by dtype from the model built on the meta device (nothing loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunewright.training.model_setup import resolve_precision, wrap_model

    model_config = AutoConfig.from_pretrained(folder)
    if not any(a.endswith("ForCausalLM") for a in model_config.architectures or []):
        raise TunewrightError(
            f"tunewright plan estimates causal language models; {config.model.name} is not one",
            hint="Train a short run (train.max_steps=5) and read peak_rss_mb in its manifest.",
        )
    load_dtype = getattr(torch, resolve_precision(config).base_weights)
    # Initialising even meta tensors draws from torch's generator; training estimates before it
    # initialises its adapters and must leave that where `set_seed` put it.
    with torch.random.fork_rng(devices=[]):
        with torch.device("meta"):
            base = AutoModelForCausalLM.from_config(model_config, dtype=load_dtype)
        quantised = _quantised_weights(base) if config.train.method == "qlora" else set()
        model = wrap_model(config, base, "CAUSAL_LM")
    frozen = trainable = trainable_bytes = total = factored = 0.0
    for name, parameter in model.named_parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
            trainable_bytes += parameter.numel() * parameter.element_size()
            factored += _adafactor_bytes(tuple(parameter.shape))
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
        adafactor_bytes=factored,
    )


def _adafactor_bytes(shape: tuple[int, ...]) -> float:
    """HF Adafactor's fp32 state for one parameter, as the Trainer builds it (no first moment):
    a row and a column vector for a matrix, a full second moment for a vector."""
    if len(shape) < 2:
        return 4.0 * math.prod(shape)
    return 4.0 * (math.prod(shape[:-1]) + math.prod(shape[:-2]) * shape[-1])


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


def count_tokens(
    config: Config, train: list[dict[str, Any]], evals: list[dict[str, Any]], hyper: Any
) -> Tokens:
    """Token counts of rendered examples (`features.causal_features`), as training batches
    them."""
    from tunewright.methods import PROMPT_METHODS

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


def estimate_memory(
    config: Config, shapes: Shapes, tokens: Tokens, processes: int, *, checkpointing: bool = False
) -> PlanResult:
    """Bytes per device by component, split the way the engine splits them."""
    from tunewright.training.model_setup import compute_dtype

    device = _device_name()
    act_bytes = 4 if str(compute_dtype(config)) == "torch.float32" else 2
    # hidden-size values kept per token, over all layers
    kept = shapes.layers * ACTIVATION_VALUES
    if checkpointing:
        kept = shapes.layers * CHECKPOINT_VALUES + ACTIVATION_VALUES
    optimizer = resolve_optimizer(config).value
    state = (
        shapes.adafactor_bytes
        if optimizer == "adafactor"
        else shapes.trainable_params * OPTIMIZER_BYTES[optimizer]
    )
    memory: dict[str, float] = {
        "runtime": _runtime_bytes(device),
        "weights": shapes.frozen_bytes,
        "adapter": float(shapes.trainable_bytes),
        "gradients": float(shapes.trainable_bytes),
        "optimizer": float(state),
        "activations": float(tokens.peak_batch_tokens * shapes.hidden * kept * act_bytes),
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


def causal_checkpointing(
    config: Config,
    folder: Any,
    train_features: list[dict[str, Any]],
    eval_features: list[dict[str, Any]],
    n_params: int,
    processes: int = 1,
) -> Lever:
    """`train.gradient_checkpointing` for a causal LM: auto asks this memory model whether the
    run fits without it, for these very examples (rendered, not yet batched)."""
    setting = config.train.gradient_checkpointing
    if setting != "auto":
        return Lever(setting, "config")
    if config.train.method in NO_CHECKPOINTING:
        return Lever(False, f"auto: PEFT's {config.train.method} tuning does not work with it")
    from tunewright.training.defaults import resolve_hyper

    hyper = resolve_hyper(config.train, n_params, len(train_features), processes=processes)
    shapes = meta_shapes(config, folder)
    tokens = count_tokens(config, train_features, eval_features, hyper)
    return choose_checkpointing(config, shapes, tokens, processes)[1]


def choose_checkpointing(
    config: Config, shapes: Shapes, tokens: Tokens, processes: int
) -> tuple[PlanResult, Lever]:
    """The estimate with `train.gradient_checkpointing` resolved, and the resolved lever: auto
    turns it on when the run does not fit without it ("tight" included: the plan warns there)."""
    setting = config.train.gradient_checkpointing
    if setting != "auto":
        result = estimate_memory(config, shapes, tokens, processes, checkpointing=setting)
        return result, Lever(setting, "config")
    without = estimate_memory(config, shapes, tokens, processes)
    needs = f"{without.per_device / 2**30:.2f} of {without.available / 2**30:.2f} GB"
    if config.train.method in NO_CHECKPOINTING:
        return without, Lever(
            False, f"auto: PEFT's {config.train.method} tuning does not work with it"
        )
    if without.fits == "fits":
        return without, Lever(False, f"auto: the plan fits in memory ({needs})")
    result = estimate_memory(config, shapes, tokens, processes, checkpointing=True)
    return result, Lever(True, f"auto: without it the plan does not fit ({needs})")


def suggest_levers(
    config: Config,
    folder: Path,
    shapes: Shapes,
    tokens: Tokens,
    processes: int,
    *,
    checkpointing: bool = False,
) -> list[dict[str, Any]]:
    """The smallest combinations of levers that make the run fit, each with the memory it
    would need per device and what it costs in time; none when nothing helps enough.
    `checkpointing`: whether the run already checkpoints (`auto` may have turned it on)."""
    options = _lever_options(config, shapes, checkpointing)
    found: list[dict[str, Any]] = []
    for size in range(1, len(options) + 1):
        for combo in itertools.combinations(options, size):
            keys = {key for key, _, _ in combo}
            if any(set(f["levers"]) <= keys for f in found):
                continue  # a smaller combination already fits
            trial = config.model_copy(deep=True)
            for key, value, _ in combo:
                section, name = key.split(".")
                setattr(getattr(trial, section), name, value)
            changed = trial.train.method != config.train.method
            trial_shapes = meta_shapes(trial, folder) if changed else shapes
            recompute = checkpointing or "train.gradient_checkpointing" in keys
            result = estimate_memory(
                trial, trial_shapes, tokens, processes, checkpointing=recompute
            )
            if result.fits == "fits":
                found.append(
                    {
                        "levers": {key: value for key, value, _ in combo},
                        "per_device": result.per_device,
                        "cost": "; ".join(cost for _, _, cost in combo),
                    }
                )
    return found


def _lever_options(
    config: Config, shapes: Shapes, checkpointing: bool
) -> list[tuple[str, Any, str]]:
    """(key, value, cost) of each lever this run does not use yet and could."""
    import importlib.util

    train, options = config.train, []
    bnb = importlib.util.find_spec("bitsandbytes") is not None
    if not checkpointing and train.method not in NO_CHECKPOINTING:
        # one more forward per step: +1/3 of forward + 2-forward backward, +1/2 of an adapter's
        # step (frozen weights: the backward computes input gradients only, ~1 forward)
        share = "+33%" if train.method == "full" else "+50%"
        options.append(("train.gradient_checkpointing", True, f"{share} step time"))
    if resolve_optimizer(config).value in ("adamw", "adamw_fused") and bnb:
        cost = "-75% optimizer state"
        if _device_name() == "cpu":
            seconds = shapes.trainable_params * BNB8_CPU_SECONDS
            cost += f", about +{seconds:.2f} s per optimizer step on CPU"
        options.append(("train.optimizer", "adamw_8bit", cost))
    if train.method == "lora" and bnb and detect_device() != "mps":
        options.append(
            ("train.method", "qlora", "slower steps: the 4-bit base is dequantised at each use")
        )
    return options


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
    its processes (counting what this process holds itself); `$TUNEWRIGHT_MEMORY_GB` instead
    when set."""
    import psutil

    budget = os.environ.get(MEMORY_ENV, "").strip()
    if budget:
        try:
            size = float(budget) * 2**30
        except ValueError:
            raise TunewrightError(
                f"${MEMORY_ENV} must be a number of GB, got {budget!r}",
                hint=f"e.g. {MEMORY_ENV}=24 to plan for a 24 GB GPU; unset it to ask the device.",
            ) from None
        return size if device == "cuda" else size / processes
    if device == "cuda":
        import torch

        return float(torch.cuda.mem_get_info()[0])
    own = psutil.Process().memory_info().rss
    return float(psutil.virtual_memory().available + own) / processes
