"""Merge and export on the tiny model: every mergeable method merges with parity and loads with
plain transformers; a bad merge (into the NF4 weights, or tampered) is caught and leaves nothing
behind; prompt-learning methods are refused; exports have the dtype they claim and a model card
read from the run folder; the hub token is never required for a dry run and never written or
printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.errors import TunewrightError
from tunewright.exporting import merge as merge_module
from tunewright.exporting.hub import safetensors_dtypes
from tunewright.exporting.parity import ParityError
from tunewright.exporting.stage import export_model, merge_adapter
from tunewright.training.stage import train_model

TOKEN = "hf_secret_test"
# The train section's method settings for each method
METHODS = {
    "lora": {"method": "lora"},
    "rslora": {"method": "lora", "lora": {"use_rslora": True}},
    "dora": {"method": "dora"},
    "ia3": {"method": "ia3"},
    "qlora": {"method": "qlora"},
    "prefix": {"method": "prefix"},
    "full": {"method": "full"},
}


@pytest.fixture(scope="module", autouse=True)
def _register_commands() -> None:
    """Add merge/export to the app unless cli.py already registers them."""
    from tunewright.cli import app
    from tunewright.exporting.cli import register

    if not any(c.name == "merge" for c in app.registered_commands):
        register(app)


def write_project(folder: Path, model: Path, method: str) -> Path:
    return make_project(
        folder,
        model=model,
        data={"min_words": 1},
        train={
            "max_steps": 3,
            "batch_size": 4,
            "grad_accum": 1,
            "learning_rate": 0.02,
            **METHODS[method],
        },
        eval={"max_new_tokens": 6, "bootstrap_samples": 50, "suites": []},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """A trained run per method (its config path), trained on first use and shared."""
    runs: dict[str, Path] = {}

    def get(method: str) -> Path:
        if method not in runs:
            path = write_project(tmp_path_factory.mktemp(method), tiny_model_dir, method)
            train_model(load_config(path))
            runs[method] = path
        return runs[method]

    return get


def export_dir(config: Path) -> Path:
    return config.parent / "runs" / "default" / "export"


def greedy(model: torch.nn.Module, tokenizer_dir: Path) -> list[str]:
    from tunewright.generate import Decoding, generate
    from tunewright.models import load_tokenizer

    prompts = [[{"role": "user", "content": f"Add {i} and {i}."}] for i in (3, 7)]
    return generate(model.eval(), load_tokenizer(tokenizer_dir), prompts, Decoding(12))


# ---------------------------------------------------------------------------------------------
# Merge


@pytest.mark.parametrize("method", ["lora", "rslora", "dora", "ia3"])
def test_merge_passes_parity_and_loads_with_plain_transformers(trained, tiny_model_dir, method):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = trained(method)
    merged = merge_adapter(load_config(config))
    assert merged == export_dir(config) / "merged"
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    } <= {p.name for p in merged.iterdir()}
    manifest = json.loads((export_dir(config) / "manifest.json").read_text())
    parity = manifest["merge"]["parity"]
    assert parity["passed"] and parity["probes"] == 8
    (check,) = parity["checks"]
    assert check["max_logit_diff"] < 1e-5 and check["greedy_same"] == 8
    assert any(path.endswith("adapter_model.safetensors") for path in manifest["inputs"])

    adapter = config.parent / "runs" / "default" / "train" / "adapter"
    on_base = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter
    )
    plain = AutoModelForCausalLM.from_pretrained(merged)
    assert greedy(plain, merged) == greedy(on_base, adapter)


def test_qlora_merges_into_dequantised_base_and_reports_both_checks(trained):
    config = trained("qlora")
    merged = merge_adapter(load_config(config))
    manifest = json.loads((export_dir(config) / "manifest.json").read_text())
    record = manifest["merge"]
    assert record["base_loaded_as"].startswith("float32 (the original weights")
    exact, as_trained = record["parity"]["checks"]
    assert exact["passed"] and exact["max_logit_diff"] < 1e-5
    assert as_trained["against"] == "the adapter on the NF4 base (as trained)"
    assert as_trained["passed"] and not as_trained["greedy_required"]
    # The merged model differs from the NF4 one by about the base's own quantisation error.
    assert 1e-3 < as_trained["max_logit_diff"] <= as_trained["tolerance"]
    assert "quantization_config" not in json.loads((merged / "config.json").read_text())
    assert safetensors_dtypes(merged) == {"F32"}


def test_merge_straight_into_nf4_is_caught_and_leaves_no_merged_folder(trained, monkeypatch):
    from tunewright.training.levers import Lever, resolve_levers
    from tunewright.training.model_setup import load_base_for_training

    def nf4_base(config, base_dir):  # the base as trained: NF4 weights
        return load_base_for_training(config, base_dir, resolve_levers(config, Lever(False, "")))

    config = load_config(trained("qlora"))
    merge_adapter(config)  # a good merge first: the failed one must not leave it looking current
    # The naive path: merge into the NF4 weights, which re-quantises them.
    monkeypatch.setattr(merge_module, "load_merge_base", nf4_base)
    with pytest.raises(ParityError, match="parity check failed") as info:
        merge_adapter(config)
    assert "vs the adapter on the weights it was merged into" in info.value.message
    stage = config.run_dir / "export"
    assert not (stage / "merged").exists()
    assert not (stage / "manifest.json").exists()
    assert not [p for p in stage.iterdir() if p.name.startswith(".merged")]  # no temp folder


def test_tampered_merge_fails_from_the_cli(trained, monkeypatch, run_cli):
    config = trained("lora")
    real = merge_module.merge_weights

    def tampered(model, method):
        merged = real(model, method)
        with torch.no_grad():
            merged.model.layers[0].mlp.down_proj.weight.add_(0.05)
        return merged

    monkeypatch.setattr(merge_module, "merge_weights", tampered)
    code, _, err = run_cli("merge", str(config))
    assert code == 1
    assert "merge parity check failed for the lora adapter" in err
    assert "greedy replies" in err and "Traceback" not in err
    assert not (export_dir(config) / "merged").exists()


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_prompt_learning_cannot_merge(trained, tmp_path, tiny_model_dir, run_cli, method):
    # prefix: a trained run; prompt: refused from the config alone, before any training.
    config = (
        trained(method) if method == "prefix" else write_project(tmp_path, tiny_model_dir, "lora")
    )
    extra = [] if method == "prefix" else ["train.method=prompt"]
    code, _, err = run_cli("merge", str(config), *extra)
    assert code == 1
    assert f"{method}-tuning adapters cannot be merged" in err
    assert "served as adapters" in err and "tunewright serve CONFIG" in err
    assert not (export_dir(config) / "merged").exists()


def test_full_fine_tuning_has_nothing_to_merge_and_exports_its_model(trained, run_cli):
    config = trained("full")
    code, out, _ = run_cli("merge", str(config))
    assert code == 0 and "nothing to merge" in out and "tunewright export" in out
    assert not (export_dir(config) / "merged").exists()
    code, out, err = run_cli("export", str(config), "--dtype", "bf16")
    assert code == 0, err
    folder = export_dir(config) / "model-bf16"
    assert safetensors_dtypes(folder) == {"BF16"}
    card = (folder / "README.md").read_text()
    assert "fine-tuned with full (all weights trained)" in card and "## Merge check" not in card


# ---------------------------------------------------------------------------------------------
# Export


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_export_dtype_is_what_the_files_say(trained, dtype):
    config = load_config(trained("dora"))
    result = export_model(config, dtype)
    assert result.folder == config.run_dir / "export" / f"model-{dtype}"
    torch_name = {"fp16": "float16", "bf16": "bfloat16"}[dtype]
    assert json.loads((result.folder / "config.json").read_text())["dtype"] == torch_name
    assert safetensors_dtypes(result.folder) == {dtype.upper().replace("FP", "F")}
    manifest = json.loads((config.run_dir / "export" / "manifest.json").read_text())
    assert manifest["exports"][dtype]["folder"] == f"model-{dtype}"
    assert manifest["merge"]["parity"]["passed"]  # merged first, as it had to be


def test_model_card_reads_the_run_folder(trained):
    from tunewright.evaluation.stage import evaluate_run

    config = load_config(trained("ia3"))
    evaluate_run(config)
    card = (export_model(config, "fp32").folder / "README.md").read_text()
    assert f"`{config.model.name}` fine-tuned with ia3 (merged into the base weights)" in card
    assert "| optimizer steps | 3 |" in card and "| learning rate | 0.02," in card
    assert "40 rows read from `train.jsonl`" in card and "4 held out for evaluation" in card
    assert (
        "Against the base model on 4 held-out examples" in card and "Verdict on exact_match" in card
    )
    assert "| exact_match |" in card and "## Merge check" in card
    resolved = (config.run_dir / "config.yaml").read_text().rstrip()
    assert f"```yaml\n{resolved}\n```" in card


def test_dry_run_lists_the_upload_and_never_shows_the_token(trained, monkeypatch, run_cli, caplog):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("a dry run must not reach the hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    config = trained("lora")
    code, out, err = run_cli(
        "export", str(config), "--dtype", "fp16", "--push", "me/tuned", "--dry-run"
    )
    assert code == 0, err
    folder = export_dir(config) / "model-fp16"
    for item in folder.iterdir():
        assert item.name in out and f"{item.stat().st_size:,}" in out
    assert "would upload 7 files" in out and "to me/tuned (private)" in out
    assert "nothing was sent" in out
    written = [p for p in (config.parent / "runs").rglob("*") if p.is_file()]
    assert not [p for p in written if TOKEN.encode() in p.read_bytes()]
    assert TOKEN not in out + err + caplog.text


def test_push_without_token_fails_before_any_work(trained, monkeypatch, run_cli):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    config = trained("rslora")
    before = {p: p.stat().st_mtime_ns for p in (config.parent / "runs").rglob("*")}
    code, _, err = run_cli("export", str(config), "--push", "me/tuned")
    assert code == 1
    assert "pushing to me/tuned needs a Hugging Face token in the HF_TOKEN" in err
    assert "--dry-run" in err
    assert {p: p.stat().st_mtime_ns for p in (config.parent / "runs").rglob("*")} == before


def test_push_passes_the_token_only_to_the_client(trained, monkeypatch, run_cli):
    """The hub is unreachable here: a stand-in client records what a real push would send."""
    import huggingface_hub

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, token: str) -> None:
            calls.append(("init", {"token": token}))

        def create_repo(self, repo_id: str, **kwargs) -> None:
            calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, **kwargs) -> str:
            calls.append(("upload_folder", kwargs))
            return "https://huggingface.co/me/tuned/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    config = trained("lora")
    code, out, err = run_cli("export", str(config), "--push", "me/tuned", "export.private=false")
    assert code == 0, err
    assert calls[0] == ("init", {"token": TOKEN})
    assert calls[1][1]["private"] is False
    assert Path(calls[2][1]["folder_path"]) == export_dir(config) / "model-fp32"
    assert "pushed to me/tuned" in out and TOKEN not in out + err
    manifest = json.loads((export_dir(config) / "manifest.json").read_text())
    assert manifest["exports"]["fp32"]["pushed_to"]["repo_id"] == "me/tuned"
    assert TOKEN not in json.dumps(manifest)


def test_token_in_the_config_is_refused(trained, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # Its own run: the resolved config.yaml now holds the token, as the user's config does.
    config = load_config(trained("rslora"), [f"data.system_prompt=use {TOKEN}"])
    with pytest.raises(TunewrightError, match=r"HF_TOKEN value appears in README\.md"):
        export_model(config, "fp16", "me/tuned", dry_run=True)
    assert not (config.run_dir / "export" / "model-fp16").exists()
