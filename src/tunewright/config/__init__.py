"""The one config for the whole workflow: pydantic models, loading, overrides and validation.

Every field is documented once, in its `description`; `tunewright init` and the README's config
reference are generated from those descriptions. Errors name the YAML key they belong to, and all
of them are reported at once.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from tunewright.errors import ConfigError

Auto = Literal["auto"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def _one_or_many(value: Any) -> Any:
    """Let `train: data.jsonl` stand for `train: [data.jsonl]`."""
    return [value] if isinstance(value, str) else value


PathList = Annotated[list[str], BeforeValidator(_one_or_many)]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(Section):
    name: str = Field(
        "smollm2-135m-instruct",
        description="Base model: an embedded name (see `tunewright models list`), a local "
        "Hugging Face model folder, or a hub id (needs network access).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weight dtype when loading: auto picks bfloat16 on a GPU that supports "
        "it, else float32.",
    )
    chat_template: str | None = Field(
        None,
        description="Path to a Jinja chat template that replaces the tokenizer's own; it is "
        "saved beside the trained weights so eval, export and serve use the same one.",
    )
    trust_remote_code: bool = Field(
        False,
        description="Allow model code from the model folder to run (only for trusted models).",
    )


class DataSection(Section):
    train: PathList = Field(
        default_factory=list,
        description="Training data files or folders (JSON, JSONL, CSV/TSV, Parquet), relative to "
        "the config file.",
        examples=[["data/train.jsonl"]],
    )
    eval: PathList = Field(
        default_factory=list,
        description="Held-out evaluation files; when empty, `eval_fraction` of train is split off.",
    )
    format: Literal[
        "auto",
        "alpaca",
        "sharegpt",
        "openai",
        "classification",
        "code",
        "summarization",
        "preference",
        "text",
    ] = Field("auto", description="Input format; auto detects it from the columns of each file.")
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


class LoraSection(Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: Literal["all-linear"] | list[str] = Field(
        "all-linear", description="Modules that get adapters: all-linear, or a list of names."
    )
    use_rslora: bool = Field(False, description="Rank-stabilised LoRA (scale = alpha / sqrt(r)).")


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
    method: Literal["full", "lora", "qlora", "dora", "ia3", "prefix", "prompt"] = Field(
        "lora", description="Fine-tuning method."
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
        "auto", description="Training precision: auto uses bf16 where supported, else fp32."
    )
    train_on_prompt: bool = Field(
        False, description="Compute loss on prompt tokens too (default: assistant tokens only)."
    )
    save_every: Literal["epoch"] | PositiveInt = Field(
        "epoch", description="Checkpoint every epoch, or every N optimizer steps."
    )
    eval_every: Literal["epoch"] | PositiveInt = Field(
        "epoch", description="Evaluate every epoch, or every N optimizer steps."
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
        False, description="Fail when the tuned model is not significantly better."
    )
    primary_metric: str | Auto = Field(
        "auto", description="The metric `require_improvement` judges."
    )
    general_probe: bool = Field(
        True, description="Also run the general-skills probe set to catch forgetting."
    )


class ExportSection(Section):
    merge: bool = Field(True, description="Merge adapters into the base weights when possible.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="dtype of the exported weights."
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
        16,
        gt=0,
        description="Non-streaming requests generated together; larger batches raise "
        "throughput on CPU (bench/serve_load.py).",
    )
    max_body_bytes: int = Field(
        1048576, gt=0, description="Largest request body accepted, in bytes."
    )


# Declared in its own module (it is the OpenAI backend's), imported here once `Section` exists.
from tunewright.openai_ft.settings import OpenAISection  # noqa: E402


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


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when `path` is None), apply `key.sub=value` overrides,
    and validate it. Raises ConfigError listing every problem, each with its key path."""
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        raw = _read_yaml(path)
        base_dir = path.resolve().parent
    problems: list[str] = []
    for item in overrides or []:
        problem = _apply_override(raw, item)
        if problem:
            problems.append(problem)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(describe_errors(exc))
        config = None
    if problems:
        raise ConfigError(
            source,
            problems,
            hint="Fix the keys above; `tunewright init` writes a documented starter config.",
        )
    assert config is not None
    config.base_dir = base_dir
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    from tunewright.errors import InputFileError

    if not path.is_file():
        raise InputFileError(
            f"config file not found: {path}", hint="Create one with `tunewright init config.yaml`."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(where, [f"invalid YAML: {reason}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), [f"top level must be a mapping of sections, got {_kind(data)}"]
        )
    return data


def _apply_override(raw: dict[str, Any], item: str) -> str | None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        return f"override {item!r}: expected key.sub=value"
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return f"override {item!r}: {part} is not a section"
        node = child
    node[parts[-1]] = value
    return None


# ---------------------------------------------------------------------------------------------
# Error messages that name the YAML key


# Names users bring from other tools, mapped to ours, for "did you mean".
_SYNONYMS = {
    "lr": "learning_rate",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "rank": "r",
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "model_name": "name",
    "max_length": "max_seq_len",
    "max_seq_length": "max_seq_len",
}


def describe_errors(exc: ValidationError) -> list[str]:
    """One readable line per key, `key.path: message (got value)`.

    A value that matches no member of a union (`int | 'auto'`) yields one error per member; they
    are merged into one line: `train.epochs: must be > 0 or 'auto' (got -2)`."""
    grouped: dict[str, tuple[list[str], str]] = {}
    for error in exc.errors():
        key, message, got = _describe_error(error)
        messages, _ = grouped.setdefault(key, ([], got))
        if message not in messages:
            messages.append(message)
    lines = []
    for key, (messages, got) in grouped.items():
        text = " or ".join(messages) + (f" (got {got})" if got else "")
        lines.append(f"{key}: {text}" if key else text)
    return lines


def _describe_error(error: Any) -> tuple[str, str, str]:
    """(key path, message, shown input or '') for one pydantic error."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, owner = _walk(loc[:-1])
        unknown = str(loc[-1])
        known = list(owner.model_fields) if owner else []
        close = [_SYNONYMS[unknown]] if _SYNONYMS.get(unknown) in known else []
        close = close or difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        return _join(parent, unknown), f"unknown key{hint}", ""
    path, _ = _walk(loc)
    if kind == "missing":
        return path, "is required", ""
    return path, _message(kind, error), _show(error.get("input"))


def _message(kind: str, error: Any) -> str:
    ctx = error.get("ctx") or {}
    templates = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "literal_error": "must be one of {expected}",
        "string_pattern_mismatch": "must match {pattern}",
        "int_parsing": "must be an integer",
        "int_type": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping of keys",
        "model_attributes_type": "must be a mapping of keys",
        "string_type": "must be a string",
    }
    if kind in templates:
        text = templates[kind].format(**ctx)
        # A literal with one choice reads better as the bare value: "must be > 0 or 'auto'".
        if kind == "literal_error" and " or " not in text and "," not in text:
            text = text.removeprefix("must be one of ")
        return text
    msg = str(error["msg"]).removeprefix("Value error, ")
    return "must be " + msg.removeprefix("Input should be ") if msg.startswith("Input") else msg


def _walk(loc: tuple[Any, ...]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic error location into a YAML key path, dropping union-member tags.

    Returns the path and the model class found at its end (for "did you mean")."""
    parts: list[str] = []
    annotation: Any = Config
    for item in loc:
        model = _model_in(annotation)
        if model is not None and isinstance(item, str) and item in model.model_fields:
            parts.append(item)
            annotation = model.model_fields[item].annotation
        elif isinstance(item, int) and _origin(annotation) in (list, tuple):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
            annotation = _args(annotation)[0] if _args(annotation) else Any
        elif _origin(annotation) is dict and isinstance(item, str):
            parts.append(item)
            annotation = _args(annotation)[1] if len(_args(annotation)) == 2 else Any
        # anything else is a union-member tag such as 'int' or "literal['auto']": skip it
    return ".".join(parts), _model_in(annotation)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in _args(annotation) if _is_union(annotation) else ():
        found = _model_in(arg)
        if found:
            return found
    return None


def _origin(annotation: Any) -> Any:
    if _is_union(annotation):
        for arg in _args(annotation):
            if typing.get_origin(arg) in (list, tuple, dict):
                return typing.get_origin(arg)
    return typing.get_origin(annotation)


def _args(annotation: Any) -> tuple[Any, ...]:
    if _is_union(annotation):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) in (list, tuple, dict):
                return typing.get_args(arg)
    return typing.get_args(annotation)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def check_paths(config: Config) -> list[str]:
    """Problems with what the config points at on disk, each named by its key."""
    from tunewright.models import EMBEDDED, looks_like_hub_id

    problems = []
    for key in ("train", "eval"):
        for i, item in enumerate(getattr(config.data, key)):
            if not config.resolve(item).exists():
                problems.append(f"data.{key}[{i}]: not found: {config.resolve(item)}")
    template = config.model.chat_template
    if template and not config.resolve(template).is_file():
        problems.append(f"model.chat_template: not found: {config.resolve(template)}")
    name = config.model.name
    if name not in EMBEDDED and not looks_like_hub_id(name) and not config.resolve(name).exists():
        problems.append(
            f"model.name: '{name}' is not an embedded model ({', '.join(EMBEDDED)}), "
            "an existing folder, or a hub id (owner/name)"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# Saving


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain data, with secrets redacted."""
    data = config.model_dump(mode="json")
    if data["serve"]["api_keys"]:
        data["serve"]["api_keys"] = ["<redacted>"] * len(data["serve"]["api_keys"])
    return data


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)


def config_hash(config: Config) -> str:
    text = json.dumps(config_to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
