"""GGUF and Ollama exports of a tiny trained run: the file loads back with transformers and passes
its parity check, the manifest and the model card record it, Ollama gets a Modelfile; planted
faults (q/k rows left in transformers' order, the chat template dropped) are caught and publish
nothing; a K-quant without llama.cpp and an unknown type fail before any work."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from tests.support.gguf_models import sharpened_copy
from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.errors import TunewrightError
from tunewright.exporting import gguf_file
from tunewright.exporting.gguf_parity import GgufParityError
from tunewright.exporting.parity import ParityError
from tunewright.exporting.stage import export_model, merge_adapter
from tunewright.training.stage import train_model


@pytest.fixture(scope="module", autouse=True)
def _register_commands() -> None:
    from tunewright.cli import app
    from tunewright.exporting.cli import register

    if not any(c.name == "export" for c in app.registered_commands):
        register(app)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A LoRA run on the tiny Llama (attention sharpened, so a q/k layout fault shows), trained
    once for this module; returns its config path."""
    model = sharpened_copy(tiny_model_dir, tmp_path_factory.mktemp("sharp-llama"))
    path = make_project(
        tmp_path_factory.mktemp("gguf"),
        model=model,
        name="tiny",
        data={"min_words": 1},
        train={"max_steps": 3, "batch_size": 4, "learning_rate": 0.02, "method": "lora"},
    )
    train_model(load_config(path))
    return path


def read_manifest(config: Path) -> dict:
    return json.loads((config.parent / "runs" / "tiny" / "export" / "manifest.json").read_text())


@pytest.mark.parametrize("quant", ["f16", "q8_0", "q4_0"])
def test_gguf_export_passes_parity_and_is_recorded(trained, run_cli, quant):
    code, out, err = run_cli("export", str(trained), "--format", "gguf", "--quant", quant)
    assert code == 0, err
    folder = trained.parent / "runs" / "tiny" / "export" / f"gguf-{quant}"
    assert f"exported gguf {quant} -> {folder}" in " ".join(out.split())
    assert {p.name for p in folder.iterdir()} == {f"tiny-{quant}.gguf", "README.md"}
    record = read_manifest(trained)["exports"][f"gguf-{quant}"]
    gguf = record["gguf"]
    assert gguf["architecture"] == "llama" and gguf["tokenizer_pre"] == "gpt-2"
    assert gguf["end_of_turn"] == ["<|im_end|>"]
    assert gguf["tensor_types"][quant.upper()] > 0 and gguf["tensor_types"]["F32"] > 0
    check = gguf["parity"]["check"]
    assert check["passed"] and check["prompts_same"] == check["probes"] == 8
    assert check["top1_agreement"] >= check["min_top1"]
    if quant == "f16":
        assert check["max_logit_diff"] < 1e-2 and check["greedy_same"] == 8
    assert record["files"][f"tiny-{quant}.gguf"] == gguf["bytes"]
    card = (folder / "README.md").read_text()
    assert f"`tiny-{quant}.gguf` ({quant}, {gguf['bytes']:,} bytes" in card
    assert f"llama-cli -m tiny-{quant}.gguf" in card and "## GGUF check" in card
    assert "ollama create" not in card


def test_gguf_keeps_the_chat_template_and_end_of_turn_token(trained):
    from gguf import GGUFReader

    config = load_config(trained, ["export.format=gguf", "export.quant=f16"])
    result = export_model(config)
    fields = GGUFReader(result.folder / "tiny-f16.gguf").fields
    template = fields["tokenizer.chat_template"].contents()
    assert "<|im_start|>" in template
    tokens = fields["tokenizer.ggml.tokens"].contents()
    assert tokens[fields["tokenizer.ggml.eot_token_id"].contents()] == "<|im_end|>"
    assert tokens[fields["tokenizer.ggml.eos_token_id"].contents()] == "<|im_end|>"


def test_ollama_export_writes_a_modelfile_beside_the_gguf(trained, run_cli):
    code, _, err = run_cli("export", str(trained), "export.format=ollama", "--quant", "q8_0")
    assert code == 0, err
    folder = trained.parent / "runs" / "tiny" / "export" / "gguf-q8_0"
    text = (folder / "Modelfile").read_text()
    assert "FROM ./tiny-q8_0.gguf\n" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert 'TEMPLATE """{{- range .Messages }}<|im_start|>' in text
    assert "SYSTEM" not in text  # the tiny model's ChatML adds no default system prompt
    assert "ollama create tiny -f Modelfile" in (folder / "README.md").read_text()
    assert read_manifest(trained)["exports"]["gguf-q8_0"]["gguf"]["ollama_template"] == "chatml"


def test_skipping_the_qk_permutation_is_caught(trained, monkeypatch, run_cli):
    monkeypatch.setattr(gguf_file, "permute_qk", lambda weights, heads, kv_heads: weights)
    code, _, err = run_cli("export", str(trained), "--format", "gguf", "--quant", "bf16")
    assert code == 1
    failure = " ".join(err.split()).partition("GGUF parity check failed")[2]
    figures = re.search(r"max logit diff (\S+) \(tolerance (\S+)\)", failure)
    assert figures is not None, err
    assert float(figures[1]) > 10 * float(figures[2])  # far outside, not a borderline miss
    assert not (trained.parent / "runs" / "tiny" / "export" / "gguf-bf16").exists()


def test_dropping_the_chat_template_is_caught(trained, monkeypatch):
    from gguf import GGUFWriter

    monkeypatch.setattr(GGUFWriter, "add_chat_template", lambda self, value: None)
    config = load_config(trained, ["export.format=gguf", "export.quant=q5_1"])
    with pytest.raises(GgufParityError, match=r"prompts 0/8 identical \(.*chat template"):
        export_model(config)
    assert not (config.run_dir / "export" / "gguf-q5_1").exists()


def test_k_quant_without_llama_cpp_fails_before_any_work(trained, monkeypatch, run_cli):
    monkeypatch.setattr(gguf_file, "_llama_cpp", lambda: None)
    monkeypatch.setattr(gguf_file, "write_gguf", None)  # would crash if reached
    code, _, err = run_cli("export", str(trained), "--format", "gguf", "--quant", "q4_k_m")
    assert code == 1
    assert "K-quants are written by llama.cpp's own quantiser" in err
    assert "pip install 'tunewright[llamacpp]'" in " ".join(err.split())


def test_unknown_quant_is_a_config_error(trained, run_cli):
    code, _, err = run_cli("export", str(trained), "--format", "gguf", "--quant", "q3_0")
    assert code == 1 and "export.quant" in err


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    from transformers import GPT2Config

    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)
    config.architectures = ["GPT2LMHeadModel"]
    with pytest.raises(TunewrightError, match="GPT2LMHeadModel is not supported") as info:
        gguf_file.architecture(config)
    assert "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM" in str(
        info.value.hint
    )


def test_serve_model_gguf_answers_like_the_merged_model(trained, tmp_path):
    """`tunewright serve --model x.gguf`: a real server on 127.0.0.1, the official client."""
    openai = pytest.importorskip("openai")
    from tests.support.serving import ServerThread

    from tunewright.config import ServeSection
    from tunewright.generate import Decoding, generate
    from tunewright.models import load_causal_lm, load_tokenizer
    from tunewright.serving.app import build_app
    from tunewright.serving.pool import load_pool
    from tunewright.serving.stage import serve_settings, target_from_args

    config = load_config(trained, ["export.format=gguf", "export.quant=f16"])
    path = export_model(config).folder / "tiny-f16.gguf"
    target = target_from_args(str(path))
    assert target.model_ids == ["tiny-f16.gguf"]
    app = build_app(load_pool(target), serve_settings(ServeSection()), tmp_path / "log.jsonl")
    question = [{"role": "user", "content": "What is the capital of France?"}]
    merged = config.run_dir / "export" / "merged"
    expected = generate(
        load_causal_lm(merged).eval(), load_tokenizer(merged), [question], Decoding(12)
    )[0]
    with ServerThread(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        reply = client.chat.completions.create(
            model="tiny-f16.gguf", messages=question, max_tokens=12, temperature=0
        )
    assert reply.choices[0].message.content == expected


def test_validate_reports_a_k_quant_without_llama_cpp(trained, monkeypatch):
    from tunewright.exporting.preflight import preflight

    monkeypatch.setattr(gguf_file, "_llama_cpp", lambda: None)
    config = load_config(trained, ["export.format=ollama", "export.quant=q6_k"])
    (problem,) = preflight(config)
    assert problem.startswith("export.quant: GGUF type q6_k: K-quants are written by llama.cpp")
    assert preflight(load_config(trained, ["export.format=ollama", "export.quant=q8_0"])) == []


def test_k_quant_goes_through_llama_cpp_when_it_is_installed(trained, monkeypatch):
    """llama-cpp-python is not installed here: a stand-in with its API records the call and
    copies the f16 file, so the plumbing around llama.cpp's quantiser is exercised."""
    import ctypes
    import types

    class Params(ctypes.Structure):
        _fields_ = [("ftype", ctypes.c_int)]

    calls = []

    def quantize(source: bytes, target: bytes, params) -> int:
        calls.append((Path(source.decode()).name, params._obj.ftype))
        shutil.copy(source.decode(), target.decode())
        return 0

    fake = types.SimpleNamespace(
        llama_model_quantize_default_params=Params,
        llama_model_quantize=quantize,
        LLAMA_FTYPE_MOSTLY_Q6_K=18,
    )
    monkeypatch.setattr(gguf_file, "_llama_cpp", lambda: fake)
    result = export_model(load_config(trained, ["export.format=gguf", "export.quant=q6_k"]))
    assert calls == [("tiny-q6_k.f16-for-quantising.gguf", 18)]
    assert {p.name for p in result.folder.iterdir()} == {"tiny-q6_k.gguf", "README.md"}
    record = read_manifest(trained)["exports"]["gguf-q6_k"]["gguf"]
    assert record["tensor_types"]["F16"] > 0  # read back from the file llama.cpp wrote
    assert record["parity"]["check"]["min_top1"] == 0.9  # checked like q8_0


def test_lora_adapter_as_gguf_matches_the_merge(trained, run_cli):
    from gguf import GGUFReader

    code, _, err = run_cli("export", str(trained), "--format", "gguf-adapter")
    assert code == 0, err
    folder = trained.parent / "runs" / "tiny" / "export" / "gguf-adapter"
    fields = GGUFReader(folder / "tiny-lora.gguf").fields
    assert fields["general.type"].contents() == "adapter"
    assert fields["adapter.type"].contents() == "lora"
    record = read_manifest(trained)["exports"]["gguf-adapter"]["gguf"]
    assert record["check"]["passed"]
    assert record["check"]["weights_checked"] == record["adapted_weights"] > 0
    assert "llama-cli -m BASE.gguf --lora tiny-lora.gguf" in (folder / "README.md").read_text()


def test_adapter_check_catches_a_wrong_scale_and_a_missing_permutation(
    trained, tmp_path, monkeypatch
):
    """Declared rank-stabilised, the adapter is written with alpha x sqrt(rank), which no longer
    matches the plain merge; written without the q/k row order, it does not either."""
    from tunewright.exporting import gguf_adapter

    config = load_config(trained)
    base, merged = Path(config.model.name), config.run_dir / "export" / "merged"
    merge_adapter(config)
    adapter = shutil.copytree(config.run_dir / "train" / "adapter", tmp_path / "adapter")
    settings = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**settings, "use_rslora": True}))
    summary = gguf_adapter.write_gguf_adapter(adapter, base, tmp_path / "rs.gguf", name="t")
    assert summary["alpha_written"] == pytest.approx(settings["lora_alpha"] * settings["r"] ** 0.5)
    with pytest.raises(ParityError, match="max delta difference"):
        gguf_adapter.check_adapter(tmp_path / "rs.gguf", base, merged)

    original = config.run_dir / "train" / "adapter"
    monkeypatch.setattr(gguf_adapter, "permute_qk", lambda weights, heads, kv_heads: weights)
    gguf_adapter.write_gguf_adapter(original, base, tmp_path / "plain.gguf", name="t")
    monkeypatch.undo()  # the check itself keeps llama.cpp's order
    with pytest.raises(ParityError, match="max delta difference"):
        gguf_adapter.check_adapter(tmp_path / "plain.gguf", base, merged)
