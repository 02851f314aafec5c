"""A transformers causal LM written as one GGUF file with the `gguf` package (no llama.cpp build).

`write_gguf` reads top to bottom: check the architecture, load the weights in float32, write the
architecture metadata, the tokenizer (vocabulary, merges, special and end-of-turn tokens, the chat
template used in training), then every tensor under llama.cpp's name and in its layout, encoded
as the requested type. What it writes is checked afterwards by `gguf_parity.py`, against the
model it came from, so a mistake here fails the export instead of shipping.

Types: the `gguf` package quantises F16, BF16, Q8_0 and the legacy Q4_0/Q4_1/Q5_0/Q5_1 in
Python. K-quants (Q4_K_M, ...) need llama.cpp's own quantiser, reached through `llama-cpp-python`
when it is installed: we write F16 first and let llama.cpp requantise it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError

# Our names (`export.quant`, `--quant`) -> the gguf package's tensor type and file type names.
PYTHON_QUANTS = {
    "f16": ("F16", "MOSTLY_F16"),
    "bf16": ("BF16", "MOSTLY_BF16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q4_0": ("Q4_0", "MOSTLY_Q4_0"),
    "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
    "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "q5_1": ("Q5_1", "MOSTLY_Q5_1"),
}
# K-quants: our name -> llama.cpp's `LLAMA_FTYPE_MOSTLY_*` suffix.
K_QUANTS = {
    name: name.upper()
    for name in (
        "q2_k",
        "q3_k_s",
        "q3_k_m",
        "q3_k_l",
        "q4_k_s",
        "q4_k_m",
        "q5_k_s",
        "q5_k_m",
        "q6_k",
    )
}
LLAMA_CPP_INSTALL = "pip install 'tunewright[llamacpp]'  (llama-cpp-python; compiles llama.cpp)"


class GgufUnsupportedError(TunewrightError):
    """The model, its tokenizer or the requested type cannot be written as GGUF here."""


@dataclass(frozen=True)
class Architecture:
    gguf_name: str  # `general.architecture`
    # llama.cpp's Llama kernels rotate interleaved pairs; HF Llama rotates halves, so llama.cpp's
    # converter reorders the rows of q and k per head. Qwen2/3 use the half layout (NeoX) there.
    permute_qk: bool


ARCHITECTURES = {
    "LlamaForCausalLM": Architecture("llama", permute_qk=True),
    # llama.cpp runs Mistral as a Llama (its converter writes "llama"), as we do.
    "MistralForCausalLM": Architecture("llama", permute_qk=True),
    "Qwen2ForCausalLM": Architecture("qwen2", permute_qk=False),
    "Qwen3ForCausalLM": Architecture("qwen3", permute_qk=False),
}

# The pre-tokenizer of a byte-level BPE tokenizer (tokenizer.json) -> llama.cpp's name for its
# split rule (`tokenizer.ggml.pre`). llama.cpp picks its regex by this name, so a wrong one
# silently tokenises differently; anything not listed is refused.
_BYTE_LEVEL = {"type": "ByteLevel", "use_regex": True}
PRE_TOKENIZERS = {
    "gpt-2": [_BYTE_LEVEL],
    "smollm": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL],
}
_SPLIT_PRE = {  # Split(regex) + ByteLevel(use_regex false): the regex names the tokenizer
    "llama-bpe": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}",
    "qwen2": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|",
}


@dataclass(frozen=True)
class GgufSummary:
    architecture: str
    quant: str
    tensor_types: dict[str, int]  # GGML type name -> number of tensors
    bytes: int
    tokenizer_pre: str
    eos_token: str
    end_of_turn: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_quant(quant: str) -> None:
    """Fail before any work on an unknown type, or a K-quant without llama.cpp."""
    if quant in PYTHON_QUANTS:
        return
    if quant in K_QUANTS:
        if _llama_cpp() is None:
            raise GgufUnsupportedError(
                f"GGUF type {quant}: K-quants are written by llama.cpp's own quantiser, which "
                "needs llama-cpp-python (not installed)",
                hint=f"Install it: {LLAMA_CPP_INSTALL}; or use one the gguf package writes: "
                f"{', '.join(PYTHON_QUANTS)}.",
            )
        return
    raise GgufUnsupportedError(
        f"GGUF type {quant}: unknown",
        hint=f"Use one of {', '.join(PYTHON_QUANTS)} (or, with llama-cpp-python, "
        f"{', '.join(K_QUANTS)}).",
    )


def write_gguf(
    source: Path, path: Path, quant: str, *, name: str, end_of_turn: list[str]
) -> GgufSummary:
    """Write the model folder `source` (weights, config, tokenizer with its chat template) as
    the GGUF file `path` with tensors of type `quant`. `end_of_turn`: the tokens that end an
    assistant turn in the chat template (the first becomes the end-of-turn id)."""
    check_quant(quant)
    if quant in K_QUANTS:
        return _write_k_quant(source, path, quant, name=name, end_of_turn=end_of_turn)
    import gguf
    from transformers import AutoConfig

    from tunewright.models import load_tokenizer

    config = AutoConfig.from_pretrained(source)
    arch = architecture(config)
    tokenizer = load_tokenizer(source)
    tensor_type, file_type = PYTHON_QUANTS[quant]
    writer = gguf.GGUFWriter(path, arch.gguf_name)
    writer.add_name(name)
    writer.add_file_type(int(getattr(gguf.LlamaFileType, file_type)))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_hyperparameters(writer, config)
    pre, eos, eot = _add_tokenizer(writer, tokenizer, config.vocab_size, end_of_turn)
    counts: dict[str, int] = {}
    for gguf_name, data, qtype in encoded_tensors(source, config, arch, tensor_type):
        writer.add_tensor(gguf_name, data, raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return GgufSummary(arch.gguf_name, quant, counts, path.stat().st_size, pre, eos, eot)


# ---------------------------------------------------------------------------------------------
# Architecture


def architecture(config: Any) -> Architecture:
    names = list(getattr(config, "architectures", None) or [])
    found = next((ARCHITECTURES[n] for n in names if n in ARCHITECTURES), None)
    if found is None:
        raise GgufUnsupportedError(
            f"GGUF export: architecture {', '.join(names) or config.model_type} is not supported",
            hint=f"Supported: {', '.join(ARCHITECTURES)}. Export safetensors instead "
            "(`--format safetensors`) and convert them with llama.cpp's convert_hf_to_gguf.py.",
        )
    rope = getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", None):
        raise GgufUnsupportedError(
            f"GGUF export: RoPE scaling '{rope_type}' is not written yet (only plain RoPE)",
            hint="Export safetensors and convert them with llama.cpp's convert_hf_to_gguf.py.",
        )
    return found


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _add_hyperparameters(writer: Any, config: Any) -> None:
    context = config.max_position_embeddings
    window = getattr(config, "sliding_window", None)
    if window and getattr(config, "use_sliding_window", True) and window < context:
        # llama.cpp's Llama attends to the whole context; capping the context at the window
        # keeps it inside what the model attends to, so the two cannot differ.
        context = window
    writer.add_context_length(context)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_rope_dimension_count(_head_dim(config))
    writer.add_key_length(_head_dim(config))
    writer.add_value_length(_head_dim(config))
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)


def _rope_theta(config: Any) -> float:
    theta = getattr(config, "rope_theta", None)
    if theta is None:  # transformers 5 keeps it in rope_parameters
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    return float(theta)


# ---------------------------------------------------------------------------------------------
# Tensors


def encoded_tensors(source: Path, config: Any, arch: Architecture, tensor_type: str) -> Any:
    """(GGUF name, encoded array, GGML type) for every tensor, in llama.cpp's layout."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    names = gguf.get_tensor_name_map(
        getattr(gguf.MODEL_ARCH, arch.gguf_name.upper()), config.num_hidden_layers
    )
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads the output projection from token_embd when there is none
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GgufUnsupportedError(
                f"GGUF export: no llama.cpp name for tensor {hf_name} ({arch.gguf_name})",
                hint="This model has parts the GGUF writer does not know; export safetensors.",
            )
        data = tensor.detach().float().numpy()
        if arch.permute_qk and hf_name.endswith("q_proj.weight"):
            data = permute_qk(data, heads, heads)
        elif arch.permute_qk and hf_name.endswith("k_proj.weight"):
            data = permute_qk(data, heads, kv_heads)
        yield (gguf_name, *encode(data, tensor_type))
    del model


def permute_qk(weights: Any, heads: int, kv_heads: int | None) -> Any:
    """llama.cpp's row order for q/k of a Llama: within each head, rows (0, d/2, 1, d/2+1, ...)
    instead of (first half, second half). The same reshape as its convert_hf_to_gguf.py."""
    if kv_heads is not None and heads != kv_heads:
        heads = kv_heads
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def encode(data: Any, tensor_type: str) -> tuple[Any, Any]:
    """`data` (float32) as `tensor_type`: 1-D tensors (norms, biases) stay float32, as llama.cpp
    keeps them; a matrix whose rows do not split into whole blocks falls back to F16."""
    import gguf
    import numpy as np

    qtype = getattr(gguf.GGMLQuantizationType, tensor_type)
    if data.ndim < 2:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if qtype == gguf.GGMLQuantizationType.F16:
        return data.astype(np.float16), qtype
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if data.shape[-1] % block:
        return data.astype(np.float16), gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(data, qtype), qtype


# ---------------------------------------------------------------------------------------------
# Tokenizer


def tokenizer_layout(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer as loaded (tokenizer.json's layout): transformers may rebuild parts of it
    by model type (Qwen2's split rule), and what training used is what counts."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise GgufUnsupportedError(
            f"GGUF export: {type(tokenizer).__name__} is not a fast (tokenizers) tokenizer",
            hint="Save the tokenizer with transformers' fast tokenizer (tokenizer.json).",
        )
    layout: dict[str, Any] = json.loads(backend.to_str())
    return layout


def tokenizer_pre(tokenizer: dict[str, Any]) -> str:
    """llama.cpp's name for this byte-level BPE tokenizer's split rule; refuses anything else."""
    model = tokenizer.get("model") or {}
    pre = tokenizer.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    if model.get("type") != "BPE" or not any(s.get("type") == "ByteLevel" for s in steps):
        raise GgufUnsupportedError(
            f"GGUF export: only byte-level BPE tokenizers are written (GPT-2 style: Llama 3, "
            f"Qwen2/3, SmolLM); this one is {model.get('type')} with "
            f"{[s.get('type') for s in steps]}",
            hint="Export safetensors and convert them with llama.cpp's convert_hf_to_gguf.py.",
        )
    normalizer = tokenizer.get("normalizer") or {}
    # NFC (Qwen's) leaves text already in NFC alone, and chat clients send NFC; llama.cpp's
    # converter drops it too. Anything else would change what the model sees.
    if normalizer and normalizer.get("type") != "NFC":
        raise GgufUnsupportedError(
            f"GGUF export: the tokenizer has a normalizer ({normalizer.get('type')}), "
            "which a byte-level GGUF vocabulary cannot carry",
            hint="Export safetensors instead.",
        )
    for name, expected in PRE_TOKENIZERS.items():
        if len(steps) == len(expected) and all(
            all(s.get(k) == v for k, v in e.items()) for s, e in zip(steps, expected, strict=True)
        ):
            return name
    split = steps[0].get("pattern", {}).get("Regex", "") if steps else ""
    for name, prefix in _SPLIT_PRE.items():
        if steps[0].get("type") == "Split" and split.startswith(prefix):
            return name
    raise GgufUnsupportedError(
        f"GGUF export: the tokenizer's pre-tokenizer {json.dumps(pre)[:200]} is not one llama.cpp "
        "names here",
        hint=f"Known: {', '.join([*PRE_TOKENIZERS, *_SPLIT_PRE])}. Export safetensors instead.",
    )


def _add_tokenizer(
    writer: Any, tokenizer: Any, vocab_size: int, end_of_turn: list[str]
) -> tuple[str, str, list[str]]:
    """Vocabulary, merges, token types, special ids and the chat template. Returns the
    pre-tokenizer name, the eos token and the end-of-turn tokens written."""
    import gguf

    data = tokenizer_layout(tokenizer)
    pre = tokenizer_pre(data)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise GgufUnsupportedError(
            f"GGUF export: the tokenizer has ids up to {max(vocab.values())}, the model's "
            f"embedding only {vocab_size} rows",
            hint="Resize the embeddings to the tokenizer before training.",
        )
    by_id = {i: t for t, i in vocab.items()}
    added = {a["content"]: a for a in data.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # embedding rows past the vocabulary (padding to a multiple)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            special = added[token].get("special", False)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    merges = data["model"].get("merges", [])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    for token, add in (
        (tokenizer.bos_token, writer.add_bos_token_id),
        (tokenizer.eos_token, writer.add_eos_token_id),
        (tokenizer.unk_token, writer.add_unk_token_id),
        (tokenizer.pad_token, writer.add_pad_token_id),
    ):
        if token is not None:
            add(vocab[token])
    eot = [t for t in end_of_turn if t in vocab]
    if eot:
        writer.add_eot_token_id(vocab[eot[0]])
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(bool(probe) and probe[-1] == tokenizer.eos_token_id and len(probe) > 1)
    writer.add_add_space_prefix(False)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        writer.add_chat_template(template)
    return pre, str(tokenizer.eos_token), eot


# ---------------------------------------------------------------------------------------------
# K-quants through llama.cpp


def _llama_cpp() -> Any:
    try:
        import llama_cpp  # type: ignore[import-not-found]
    except ImportError:
        return None
    return llama_cpp


def _write_k_quant(
    source: Path, path: Path, quant: str, *, name: str, end_of_turn: list[str]
) -> GgufSummary:
    """F16 first (ours), then llama.cpp's quantiser picks per-tensor types as its
    `llama-quantize` does."""
    llama_cpp = _llama_cpp()
    f16 = path.with_name(path.stem + ".f16-for-quantising.gguf")
    summary = write_gguf(source, f16, "f16", name=name, end_of_turn=end_of_turn)
    import ctypes

    from gguf import GGUFReader

    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{K_QUANTS[quant]}")
        status = llama_cpp.llama_model_quantize(
            str(f16).encode(), str(path).encode(), ctypes.byref(params)
        )
    finally:
        f16.unlink(missing_ok=True)
    if status != 0:
        raise RuntimeError(f"llama.cpp's quantiser failed with status {status} for {quant}")
    counts: dict[str, int] = {}
    for tensor in GGUFReader(path).tensors:  # llama.cpp chooses a type per tensor
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return GgufSummary(
        summary.architecture,
        quant,
        counts,
        path.stat().st_size,
        summary.tokenizer_pre,
        summary.eos_token,
        summary.end_of_turn,
    )
