"""Every config section, declared once: each field's `description` is its documentation, reused
for `tunewright init` and the README's config reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from tunewright.config.data_source import DataFormat, DataSource, SourceList
from tunewright.config.fields import Auto, PositiveFloat, PositiveInt, Section
from tunewright.config.grpo_section import Grader, GrpoSection
from tunewright.config.openai_section import OpenAISection
from tunewright.methods import Method


class ModelSection(Section):
    name: str = Field(
        "smollm2-135m-instruct",
        description="Base model: an embedded name (see `tunewright models list`), a local "
        "Hugging Face model folder, or a hub id (needs network access).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weight dtype of the base model when loading it (training's frozen base, "
        "evaluation, serving): auto picks bfloat16 on a CUDA GPU that supports it and on a CPU "
        "with native bf16 (avx512_bf16 or amx_bf16), else float32; full fine-tuning keeps "
        "float32 master weights under auto.",
    )
    chat_template: str | None = Field(
        None,
        description="Path to a Jinja chat template that replaces the tokenizer's own, or a "
        "registry name (chatml, qwen, llama3, llama2, mistral, gemma, phi, zephyr) used when "
        "the tokenizer has none; either is saved beside the trained weights so eval, export "
        "and serve use the same one, and the run manifest records it.",
    )
    trust_remote_code: bool = Field(
        False,
        description="Allow model code from the model folder to run (only for trusted models).",
    )
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto",
        description="Attention kernel for training, evaluation and serving: auto picks "
        "flash_attention_2 on a CUDA GPU when the flash_attn package is installed and compute "
        "is 16-bit, else sdpa (eager for models without sdpa). Packed training batches never "
        "attend across examples with any of them.",
    )


class DataSection(Section):
    train: SourceList = Field(
        default_factory=list,
        description="Training data files or folders (JSON, JSONL, CSV/TSV, Parquet), relative to "
        "the config file. An entry may also be a mapping {path, format, columns, messages} "
        "giving that file its own format, column map and message keys (see `import-config`).",
        examples=[["data/train.jsonl"]],
    )
    eval: SourceList = Field(
        default_factory=list,
        description="Held-out evaluation files; when empty, `eval_fraction` of train is split off.",
    )
    format: DataFormat = Field(
        "auto",
        description="Input format; auto detects it from the columns of each file. preference "
        "(pairs) and feedback (answers labelled desirable or not) each come in several shapes, "
        "told apart by their columns.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Column map from the format's names to yours, e.g. {output: response}.",
    )
    task: Literal["auto", "chat", "instruction", "classification", "code", "summarization"] = Field(
        "auto", description="Task type; auto infers it from the format."
    )
    system_prompt: str | None = Field(
        None, description="System message added to examples that have none."
    )
    eval_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of train split off for eval when `eval` is empty."
    )
    max_seq_len: int = Field(
        1024, gt=0, description="Maximum tokens per example after applying the chat template."
    )
    min_words: int = Field(
        5, ge=0, description="Assistant answers with fewer words are reported as too short."
    )
    near_duplicate_threshold: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Jaccard similarity (MinHash estimate) at which two examples count as "
        "near-duplicates.",
    )
    max_invalid_fraction: float = Field(
        0.05,
        ge=0,
        le=1,
        description="`data prepare` fails when more than this share of rows is rejected.",
    )
    max_truncated_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="`data prepare` fails when more than this share of examples exceeds "
        "`max_seq_len`.",
    )
    allow_leakage: bool = Field(
        False, description="Let `data prepare` pass when eval examples also appear in train."
    )
    feedback_as_sft: bool = Field(
        False,
        description="Let supervised training use binary feedback data (answers labelled "
        "desirable or not), learning the desirable answers only; without it, training refuses "
        "such data.",
    )

    @model_validator(mode="after")
    def _mixing_is_for_train(self) -> DataSection:
        for index, item in enumerate(self.eval):
            if isinstance(item, DataSource) and (item.weight or item.max_rows):
                raise ValueError(
                    f"data.eval[{index}]: weight and max_rows mix training data; eval is "
                    "measured as it is (use them on data.train entries)"
                )
        weights = [i.weight for i in self.train if isinstance(i, DataSource) and i.weight]
        if weights and len(weights) < len(self.train) and sum(weights) >= 1:
            raise ValueError(
                f"data.train: the weighted entries sum to {sum(weights):g}, leaving nothing "
                "for the unweighted ones; with some entries unweighted, weights are "
                "fractions of the training rows and must sum below 1"
            )
        return self


class LoraSection(Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: Literal["all-linear"] | list[str] = Field(
        "all-linear", description="Modules that get adapters: all-linear, or a list of names."
    )
    use_rslora: bool = Field(False, description="Rank-stabilised LoRA (scale = alpha / sqrt(r)).")


class PreferenceSection(Section):
    beta: PositiveFloat | Auto = Field(
        "auto",
        description="dpo and kto: how far the model may move from the reference (lower: "
        "further); simpo: the reward scale; orpo: the weight of the odds-ratio term. auto: 0.1, "
        "or 2.0 for simpo.",
    )
    loss_type: Literal["auto", "sigmoid", "ipo", "hinge", "robust"] = Field(
        "auto",
        description="DPO's loss (objective dpo): sigmoid (the DPO paper), ipo, hinge, robust "
        "(with label_smoothing, for noisy labels). auto: sigmoid, or robust when "
        "label_smoothing is set.",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="dpo and simpo: the assumed probability that a pair's preference is "
        "flipped (conservative DPO).",
    )
    simpo_gamma: float | Auto = Field(
        "auto",
        description="simpo: the target reward margin over beta (gamma/beta in the SimPO paper). "
        "auto: 0.5.",
    )
    reference_free: bool = Field(
        False,
        description="dpo without a reference model: the reference's log-likelihoods are taken "
        "as 0, so the loss compares the policy's chosen and rejected answers alone (no "
        "reference pass, a third less compute per step).",
    )


class FsdpSection(Section):
    sharding: Literal["full_shard", "shard_grad_op", "hybrid_shard", "no_shard"] = Field(
        "full_shard",
        description="full_shard: parameters, gradients and optimizer states split across "
        "processes (least memory); shard_grad_op: parameters stay whole from forward to backward "
        "(faster, more memory); hybrid_shard: full_shard within a node, replicated across nodes; "
        "no_shard: everything replicated, which is DDP (and runs as DDP).",
    )
    cpu_offload: bool = Field(
        False,
        description="Keep the parameter shards and optimizer states in CPU memory between uses "
        "(frees GPU memory, slower; nothing to offload when training on the CPU).",
    )


class DeepSpeedSection(Section):
    config: str | None = Field(
        None,
        description="A DeepSpeed JSON config file, relative to the config file; use it or the "
        "settings below, not both. Its bf16/fp16 setting must match `train.precision` (or be "
        "auto).",
    )
    stage: int = Field(
        2,
        ge=0,
        le=3,
        description="ZeRO stage: 1 splits optimizer states across processes, 2 also gradients, "
        "3 also parameters; 0 replicates everything.",
    )
    offload_optimizer: bool = Field(
        False,
        description="Optimizer states and update in CPU memory (ZeRO-Offload; stage 1-3).",
    )
    offload_param: bool = Field(
        False, description="Parameters in CPU memory between uses (stage 3 only)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DeepSpeedSection:
        problems = []
        inline = {"stage", "offload_optimizer", "offload_param"} & self.model_fields_set
        if self.config and inline:
            problems.append(f"config and {', '.join(sorted(inline))} are both set; use one")
        if self.offload_param and self.stage != 3:
            problems.append(f"offload_param needs stage 3 (got stage {self.stage})")
        if self.offload_optimizer and self.stage == 0:
            problems.append("offload_optimizer needs stage 1, 2 or 3 (got stage 0)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TrainSection(Section):
    backend: Literal["local", "openai"] = Field(
        "local", description="local trains an open model here; openai uses OpenAI fine-tuning."
    )
    method: Method = Field("lora", description="Fine-tuning method.")
    objective: Literal["sft", "dpo", "orpo", "kto", "simpo", "grpo"] = Field(
        "sft",
        description="What training optimises: sft (the answers' likelihood), or a preference "
        "objective through TRL: dpo, orpo, simpo (preference pairs) or kto (answers labelled "
        "desirable or not, or pairs split into one of each), or grpo (answers sampled from the "
        "model, scored by train.rewards). With an adapter, the reference model of dpo, kto and "
        "grpo is the base with the adapter switched off.",
    )
    preference: PreferenceSection = Field(
        default_factory=PreferenceSection,
        description="Options of the preference objectives (train.objective other than sft).",
    )
    grpo: GrpoSection = Field(
        default_factory=GrpoSection, description="Options of train.objective: grpo."
    )
    rewards: list[Grader] = Field(
        default_factory=list,
        validate_default=True,
        description="grpo's graders, each a mapping with a `weight` (default 1): `type:` "
        "exact_match, regex (`pattern`), json_parses, json_schema (`schema`), similarity (chrF "
        "against the reference, 0-1), length_penalty (`max_words`), or `python: module:function`.",
    )
    lora: LoraSection = Field(
        default_factory=LoraSection, description="LoRA options (lora, qlora, dora)."
    )
    num_virtual_tokens: int = Field(
        20, gt=0, description="Virtual tokens for prefix and prompt tuning."
    )
    epochs: PositiveInt | Auto = Field(
        "auto", description="Passes over the training data; auto picks from model and data size."
    )
    max_steps: int | None = Field(
        None, ge=0, description="Stop after this many optimizer steps (overrides epochs)."
    )
    batch_size: PositiveInt | Auto = Field("auto", description="Examples per device per step.")
    grad_accum: PositiveInt | Auto = Field("auto", description="Gradient accumulation steps.")
    learning_rate: PositiveFloat | Auto = Field("auto", description="Peak learning rate.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps spent warming up.")
    weight_decay: float = Field(0.001, ge=0, description="AdamW weight decay.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Compute precision of training (autocast); trained weights stay float32. "
        "auto: bf16 on a CUDA GPU that supports it and on a CPU with native bf16 (avx512_bf16 or "
        "amx_bf16), else fp32.",
    )
    gradient_checkpointing: bool | Auto = Field(
        "auto",
        description="Recompute each layer's activations in the backward pass instead of keeping "
        "them (non-reentrant): a fraction of the activation memory for about +33% step time "
        "(+50% with adapters). auto turns it on when `tunewright plan`'s memory estimate does "
        "not fit the device.",
    )
    optimizer: Literal[
        "auto", "adamw", "adamw_fused", "adamw_8bit", "paged_adamw_8bit", "adafactor"
    ] = Field(
        "auto",
        description="auto: adamw_fused, or adamw under FSDP and DeepSpeed (they shard or own "
        "the optimizer); adamw (torch); adamw_fused (torch's fused kernel, same maths, ~8x "
        "faster steps on CPU); adamw_8bit (bitsandbytes, 8-bit states: -75% optimizer memory); "
        "paged_adamw_8bit (the same, paged to CPU memory under pressure, CUDA only); adafactor "
        "(factored second moments, no first moment).",
    )
    liger: bool | Auto = Field(
        "auto",
        description="Liger's fused linear-cross-entropy (and its other kernels) for causal LMs: "
        "the loss without materialising the logits. CUDA only, needs the liger-kernel package; "
        "auto uses it when both are there (the CPU keeps tunewright's selective LM head).",
    )
    train_on_prompt: bool = Field(
        False, description="Compute loss on prompt tokens too (default: assistant tokens only)."
    )
    save_every: Literal["epoch"] | PositiveInt | Auto = Field(
        "auto",
        description="Checkpoint every epoch, or every N optimizer steps; auto: when eval_every "
        "does (so the best checkpoint is tracked).",
    )
    eval_every: Literal["epoch"] | PositiveInt | Auto = Field(
        "auto",
        description="Evaluate every epoch, or every N optimizer steps; auto: twice per epoch "
        "when an epoch is 30 optimizer steps or fewer (and train.max_steps is unset), else "
        "every epoch.",
    )
    keep_checkpoints: int = Field(
        2, gt=0, description="Checkpoints kept (the best is always kept)."
    )
    early_stopping_patience: int | None = Field(
        None, gt=0, description="Stop after this many evaluations without eval-loss improvement."
    )
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Trackers. W&B runs offline when no key is set; MLflow uses a local store.",
    )
    distributed: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp",
        description="How several processes (`train --nproc N`, torchrun, accelerate launch) share "
        "the work: ddp keeps a whole copy of the model in each; fsdp and deepspeed split it "
        "between them. One process ignores it.",
    )
    fsdp: FsdpSection = Field(
        default_factory=FsdpSection, description="FSDP options (`distributed: fsdp`)."
    )
    deepspeed: DeepSpeedSection = Field(
        default_factory=DeepSpeedSection,
        description="DeepSpeed ZeRO options (`distributed: deepspeed`).",
    )

    @field_validator("rewards")
    @classmethod
    def _rewards_for_grpo(cls, rewards: list, info: ValidationInfo) -> list:
        objective = info.data.get("objective")
        if objective == "grpo" and not rewards:
            raise ValueError("train.objective grpo needs at least one grader")
        if rewards and objective not in (None, "grpo"):
            raise ValueError(f"only train.objective grpo uses rewards (objective is {objective})")
        return rewards


class JudgeSection(Section):
    base_url: str = Field(
        description="OpenAI-compatible endpoint of the judge model, e.g. "
        "https://api.openai.com/v1 or a `tunewright serve` URL ending in /v1."
    )
    model: str = Field(description="Judge model name, as the endpoint knows it.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the judge's API key."
    )
    rubric: str | Auto = Field(
        "auto", description="What makes an answer better; auto picks one by task type."
    )
    price_per_1k_tokens: float | None = Field(
        None, ge=0, description="Price per 1,000 tokens, to print an estimated cost first."
    )


class GateSection(Section):
    improvement: bool = Field(
        False,
        description="Fail unless the primary metric is significantly better "
        "(eval.require_improvement is an alias).",
    )
    no_worse_slice: bool = Field(
        False, description="Fail when any slice (eval.slices) is significantly worse."
    )
    no_worse_suite: bool = Field(
        False, description="Fail when any suite (eval.suites) is significantly worse."
    )


class EvalSection(Section):
    metrics: (
        list[Literal["exact_match", "accuracy", "f1", "bleu", "chrf", "rouge", "loss"]] | Auto
    ) = Field("auto", description="Metrics; auto picks by task type.")
    max_new_tokens: int = Field(128, gt=0, description="Generation length limit per example.")
    batch_size: int = Field(8, gt=0, description="Examples generated together.")
    max_examples: int | None = Field(
        None, gt=0, description="Evaluate at most this many examples (all when empty)."
    )
    bootstrap_samples: int = Field(
        1000, gt=0, description="Paired bootstrap resamples for confidence intervals."
    )
    require_improvement: bool = Field(
        False, description="Alias of eval.gate.improvement, the gate's first form."
    )
    gate: GateSection = Field(
        default_factory=GateSection, description="When `tunewright eval` exits 1 (for CI)."
    )
    primary_metric: str | Auto = Field(
        "auto", description="The metric the verdict and eval.gate.improvement judge."
    )
    judge: JudgeSection | None = Field(
        None,
        description="Pairwise LLM judge of base vs tuned answers (both orders); empty: none.",
    )
    suites: list[str] = Field(
        default_factory=lambda: ["builtin"],
        description="Multiple-choice suites scored by log-likelihood, base vs tuned, to catch "
        "forgetting: builtin (293 general questions), JSONL files (question, choices, answer) "
        "or lm-eval task YAML files; [] turns them off.",
    )
    slices: list[str] = Field(
        default_factory=lambda: ["label", "source", "prompt_length"],
        description="Compare per slice: label (classification), source (file), prompt_length "
        "(tertile), or any record field (dotted, e.g. source.file); [] turns slices off.",
    )


class ExportSection(Section):
    merge: bool = Field(True, description="Merge adapters into the base weights when possible.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="dtype of the exported weights (format safetensors only)."
    )
    format: Literal["safetensors", "gguf", "ollama", "gguf-adapter"] = Field(
        "safetensors",
        description="safetensors: a transformers folder; gguf: one GGUF file for llama.cpp and "
        "LM Studio; ollama: the GGUF plus a Modelfile; gguf-adapter: the LoRA adapter alone as "
        "GGUF (float32, applied at load time). GGUF exports are checked for parity.",
    )
    quant: Literal[
        "f16",
        "bf16",
        "q8_0",
        "q4_0",
        "q4_1",
        "q5_0",
        "q5_1",
        "q2_k",
        "q3_k_s",
        "q3_k_m",
        "q3_k_l",
        "q4_k_s",
        "q4_k_m",
        "q5_k_s",
        "q5_k_m",
        "q6_k",
    ] = Field(
        "q8_0",
        description="GGUF tensor type (formats gguf and ollama). K-quants (*_k*) need "
        "llama-cpp-python (pip install 'tunewright[llamacpp]').",
    )
    push_to_hub: str | None = Field(
        None, description="Hub repo id to push to (token from HF_TOKEN, never saved)."
    )
    private: bool = Field(True, description="Create the hub repo as private.")


class ServeSection(Section):
    host: str = Field("127.0.0.1", description="Address to bind; 127.0.0.1 keeps it local.")
    port: int = Field(8000, gt=0, lt=65536, description="TCP port.")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Accepted API keys (also TUNEWRIGHT_API_KEYS, comma-separated); none means "
        "open. Never written to logs or saved configs.",
    )
    max_prompt_tokens: int = Field(2048, gt=0, description="Longest prompt accepted, in tokens.")
    max_tokens: int = Field(512, gt=0, description="Largest `max_tokens` a request may ask for.")
    log_content: bool = Field(
        False, description="Write prompts and outputs to the request log (off: counts only)."
    )
    batch_size: int = Field(
        32,
        gt=0,
        description="Requests decoded together (streams too); new requests join the running "
        "batch between steps. 32 served 33% more requests/s than 16 on 2 CPU cores "
        "(bench/serve_load.py).",
    )
    max_body_bytes: int = Field(
        1048576, gt=0, description="Largest request body accepted, in bytes."
    )
    max_queue: int = Field(
        128,
        gt=0,
        description="Generations waiting for the model at most; beyond, requests get 429 with "
        "Retry-After.",
    )
    request_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest a request waits for its generation to start; then 503 with "
        "Retry-After.",
    )
    max_messages: int = Field(256, gt=0, description="Most messages in one chat request.")
    max_choices: int = Field(
        16,
        gt=0,
        description="Most generations one request asks for (prompts in a completion request "
        "times `n`).",
    )
    docs: bool = Field(False, description="Serve /docs, /redoc and /openapi.json.")
    metrics_key: SecretStr | None = Field(
        None,
        description="Key /metrics takes instead of the API keys (none: the API keys; no keys "
        "at all: open).",
    )


class Config(Section):
    name: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Run name: outputs go to `<runs_dir>/<name>/<stage>/`.",
    )
    runs_dir: str = Field("runs", description="Folder holding run folders, relative to the config.")
    seed: int = Field(42, description="Random seed for splitting, training and sampling.")
    model: ModelSection = Field(default_factory=ModelSection, description="The base model.")
    data: DataSection = Field(default_factory=DataSection, description="Data loading and checks.")
    train: TrainSection = Field(default_factory=TrainSection, description="Fine-tuning.")
    eval: EvalSection = Field(default_factory=EvalSection, description="Evaluation against base.")
    export: ExportSection = Field(default_factory=ExportSection, description="Merge and export.")
    serve: ServeSection = Field(default_factory=ServeSection, description="HTTP serving.")
    openai: OpenAISection = Field(
        default_factory=OpenAISection, description="OpenAI fine-tuning (train.backend: openai)."
    )

    # Where the YAML came from; relative paths in the config resolve against its folder.
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")

    def resolve(self, relative: str) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def run_dir(self) -> Path:
        return self.resolve(self.runs_dir) / self.name
