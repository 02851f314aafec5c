"""Every training method on the tiny model: a few steps, trainable parameters change, frozen
ones do not, and the saved result loads with plain transformers/PEFT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.support.projects import addition_rows, make_project, write_jsonl

from tunewright.config import load_config
from tunewright.training.stage import TrainingDivergedError, build_job, run_job

METHODS = ["full", "lora", "qlora", "dora", "ia3", "prefix", "prompt"]


TRAIN = {"epochs": 1, "max_steps": 4, "batch_size": 4, "grad_accum": 1, "learning_rate": 0.01}


def write_project(folder: Path, model: Path, rows: int = 24, **train: object) -> Path:
    """The project every test here trains; `train` overrides (None drops a setting)."""
    return make_project(folder, model=model, rows=addition_rows(rows), train={**TRAIN, **train})


def snapshot(model: torch.nn.Module) -> dict[str, tuple[bool, torch.Tensor]]:
    return {n: (p.requires_grad, p.detach().clone()) for n, p in model.named_parameters()}


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_and_reloads(tmp_path, tiny_model_dir, method, capsys):
    config = load_config(write_project(tmp_path, tiny_model_dir), [f"train.method={method}"])
    job = build_job(config, console=None)
    before = snapshot(job.model)
    result = run_job(config, job)
    after = dict(job.model.named_parameters())

    trainable = [n for n, (grad, _) in before.items() if grad]
    frozen = [n for n, (grad, _) in before.items() if not grad]
    assert trainable, "nothing to train"
    changed = [n for n in trainable if not torch.equal(before[n][1], after[n].detach())]
    assert len(changed) >= len(trainable) // 2, f"only {len(changed)}/{len(trainable)} changed"
    for name in frozen:
        assert torch.equal(before[name][1], after[name].detach()), f"frozen {name} changed"
    assert method == "full" or frozen

    train_dir = tmp_path / "runs" / "default" / "train"
    manifest = json.loads((train_dir / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 4
    assert {"adapter" if method != "full" else "model", "metrics.jsonl", "loss.png"} <= set(
        manifest["outputs"]
    )
    assert (result.output_dir / "chat_template.jinja").is_file()
    _reload_and_compare(result.output_dir, tiny_model_dir, job.model, method)


def _reload_and_compare(output: Path, base: Path, trained: torch.nn.Module, method: str) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if method == "full":
        reloaded = AutoModelForCausalLM.from_pretrained(output)
    elif method == "qlora":
        # The adapter is what was saved; plain PEFT loads it onto a full-precision base.
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), output)
        assert any("lora_A" in n for n, _ in reloaded.named_parameters())
        return
    else:
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), output)
    ids = torch.tensor([[1, 5, 9, 12, 30]])
    trained.eval()
    reloaded.eval()
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
    assert torch.allclose(expected.float(), got.float(), atol=1e-5)


def test_nan_loss_stops_with_clear_error(tmp_path, tiny_model_dir):
    config = load_config(
        write_project(tmp_path, tiny_model_dir),
        ["train.method=full", "train.learning_rate=1e12", "train.max_steps=8"],
    )
    with pytest.raises(TrainingDivergedError, match="NaN/inf at step") as info:
        run_job(config, build_job(config, console=None))
    assert "Last good checkpoint" in info.value.hint
    assert not (tmp_path / "runs" / "default" / "train" / "manifest.json").exists()
    assert not (tmp_path / "runs" / "default" / "train" / "model").exists()


def test_template_that_hides_turns_fails_before_training(tmp_path, tiny_model_dir):
    from tunewright.chat import LossMaskError

    template = tmp_path / "bad.jinja"
    # Renders only the last message, so earlier turns are rewritten as the conversation grows.
    template.write_text("{{ messages[-1]['content'] }}<|im_end|>")
    config = load_config(
        write_project(tmp_path, tiny_model_dir), [f"model.chat_template={template}"]
    )
    with pytest.raises(LossMaskError):
        build_job(config, console=None)
    assert not (tmp_path / "runs" / "default" / "train").exists()


def test_auto_values_are_resolved_and_recorded(tmp_path, tiny_model_dir, run_cli):
    config = write_project(tmp_path, tiny_model_dir, rows=30, batch_size=None, epochs=None)
    code, _, err = run_cli("train", str(config), "train.max_steps=2")
    assert code == 0, err
    manifest = json.loads((tmp_path / "runs" / "default" / "train" / "manifest.json").read_text())
    hyper = manifest["hyperparameters"]
    assert hyper["epochs"] == 5 and hyper["sources"]["epochs"] == "auto"  # 3 + 2 under 500 rows
    assert hyper["batch_size"] == 8 and hyper["sources"]["batch_size"] == "auto"
    assert hyper["grad_accum"] == 1 and hyper["sources"]["grad_accum"] == "config"
    assert "epochs 5 (auto)" in err


def test_train_reprepares_when_the_data_file_changes(tmp_path, tiny_model_dir):
    path = write_project(tmp_path, tiny_model_dir)
    prepared_counts = []
    for rows in (24, 30):
        write_jsonl(tmp_path / "train.jsonl", addition_rows(rows))
        job = build_job(load_config(path, ["train.max_steps=1"]))
        prepared_counts.append(len(job.train_features) + len(job.eval_features))
    assert prepared_counts == [24, 30]
