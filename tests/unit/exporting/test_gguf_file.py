"""The GGUF writer on a tiny random model of each supported architecture: the file loads back
with transformers as the same architecture and passes the f16 parity check; Qwen's biases and
q/k norms arrive; a fault in the layout is caught for Mistral as for Llama."""

from __future__ import annotations

import pytest
from tests.support.gguf_models import build_tiny

from tunewright.exporting import gguf_file
from tunewright.exporting.gguf_parity import GgufParityError, check_gguf
from tunewright.exporting.parity import BUILTIN_PROMPTS, Probes

PROBES = Probes([[{"role": "user", "content": t}] for t in BUILTIN_PROMPTS], "built-in")


@pytest.mark.parametrize(
    ("architecture", "gguf_name"),
    [("Qwen2ForCausalLM", "qwen2"), ("Qwen3ForCausalLM", "qwen3"), ("MistralForCausalLM", "llama")],
)
def test_architecture_round_trips_with_parity(tmp_path, tiny_model_dir, architecture, gguf_name):
    from gguf import GGUFReader

    source = build_tiny(architecture, tiny_model_dir, tmp_path / "model")
    path = tmp_path / "out" / "model-f16.gguf"
    path.parent.mkdir()
    summary = gguf_file.write_gguf(source, path, "f16", name="tiny", end_of_turn=["<|im_end|>"])
    assert summary.architecture == gguf_name
    names = {t.name for t in GGUFReader(path).tensors}
    assert ("blk.0.attn_q.bias" in names) == (gguf_name == "qwen2")
    assert ("blk.0.attn_q_norm.weight" in names) == (gguf_name == "qwen3")
    assert ("output.weight" in names) == (architecture == "MistralForCausalLM")  # untied
    record = check_gguf(source, path, "f16", PROBES)
    check = record["check"]
    assert check["passed"] and check["greedy_same"] == 8 and check["prompts_same"] == 8


def test_mistral_without_the_qk_permutation_fails_parity(tmp_path, tiny_model_dir, monkeypatch):
    source = build_tiny("MistralForCausalLM", tiny_model_dir, tmp_path / "model")
    monkeypatch.setattr(gguf_file, "permute_qk", lambda weights, heads, kv_heads: weights)
    path = tmp_path / "model-f16.gguf"
    gguf_file.write_gguf(source, path, "f16", name="tiny", end_of_turn=["<|im_end|>"])
    with pytest.raises(GgufParityError, match="max logit diff"):
        check_gguf(source, path, "f16", PROBES)


def test_quantised_types_fall_back_to_f16_for_rows_that_do_not_fill_a_block():
    import numpy as np
    from gguf import GGMLQuantizationType

    data = np.ones((4, 40), dtype=np.float32)  # 40 is not a multiple of Q8_0's 32-value blocks
    assert gguf_file.encode(data, "Q8_0")[1] == GGMLQuantizationType.F16
    assert gguf_file.encode(np.ones((4, 64), np.float32), "Q8_0")[1] == GGMLQuantizationType.Q8_0
    assert gguf_file.encode(np.ones(64, np.float32), "Q8_0")[1] == GGMLQuantizationType.F32


def test_unknown_tokenizer_layouts_are_refused():
    unigram = {"model": {"type": "Unigram"}, "pre_tokenizer": {"type": "Metaspace"}}
    with pytest.raises(gguf_file.GgufUnsupportedError, match="only byte-level BPE"):
        gguf_file.tokenizer_pre(unigram)
    odd = {
        "model": {"type": "BPE"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [{"type": "Punctuation"}, {"type": "ByteLevel", "use_regex": True}],
        },
    }
    with pytest.raises(gguf_file.GgufUnsupportedError, match=r"not one llama\.cpp names"):
        gguf_file.tokenizer_pre(odd)
    assert (
        gguf_file.tokenizer_pre(
            {"model": {"type": "BPE"}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": True}}
        )
        == "gpt-2"
    )


def test_slow_tokenizers_are_refused():
    with pytest.raises(gguf_file.GgufUnsupportedError, match="not a fast"):
        gguf_file.tokenizer_layout(object())


def test_rope_scaling_is_refused_by_name():
    from transformers import LlamaConfig

    config = LlamaConfig(
        max_position_embeddings=16384,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    config.architectures = ["LlamaForCausalLM"]
    with pytest.raises(gguf_file.GgufUnsupportedError, match="RoPE scaling 'llama3'"):
        gguf_file.architecture(config)
