"""The memory levers on the tiny model, a few steps each: gradient checkpointing recomputes
without changing the loss, every optimizer that runs here trains, eager attention trains, what
cannot run here is refused before any work, `plan` names the levers that make a run fit, and the
manifest, metrics.jsonl and the progress bar report one training-loop speed."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from tests.support.projects import addition_rows, make_project

from tunewright.config import load_config
from tunewright.files import read_jsonl
from tunewright.training.stage import build_job, run_job

TRAIN = {"epochs": 1, "max_steps": 3, "batch_size": 4, "grad_accum": 1, "learning_rate": 0.01}
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a CPU refuses")


@dataclass
class Trained:
    job: Any
    before: dict[str, tuple[bool, torch.Tensor]]  # name -> (trainable, value before training)
    manifest: dict[str, Any]
    log: list[dict[str, Any]]  # metrics.jsonl
    console: str  # what the progress callback printed


def train(folder: Path, model: Path, **train: object) -> Trained:
    """A short run of the project in `folder`; `train` overrides the train section."""
    path = make_project(folder, model=model, rows=addition_rows(24), train={**TRAIN, **train})
    config = load_config(path)
    job = build_job(config, console=None)
    before = {n: (p.requires_grad, p.detach().clone()) for n, p in job.model.named_parameters()}
    printed = io.StringIO()
    run_job(config, job, console=Console(file=printed, width=200))
    train_dir = folder / "runs" / "default" / "train"
    manifest = json.loads((train_dir / "manifest.json").read_text())
    return Trained(
        job, before, manifest, read_jsonl(train_dir / "metrics.jsonl"), printed.getvalue()
    )


def checkpointing_on(model: torch.nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def test_checkpointing_recomputes_without_changing_the_loss(tmp_path, tiny_model_dir):
    # LoRA dropout is on (0.05): the recomputed forward must draw the same masks.
    plain = train(tmp_path / "plain", tiny_model_dir)  # auto: the plan fits, so off
    recomputed = train(tmp_path / "recomputed", tiny_model_dir, gradient_checkpointing=True)

    assert not checkpointing_on(plain.job.model) and checkpointing_on(recomputed.job.model)
    off = plain.manifest["levers"]["gradient_checkpointing"]
    assert off["value"] is False and off["source"].startswith("auto: the plan fits in memory")
    assert recomputed.manifest["levers"]["gradient_checkpointing"] == {
        "value": True,
        "source": "config",
    }
    losses = [[e["loss"] for e in run.log if "loss" in e] for run in (plain, recomputed)]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], abs=1e-5)
    evals = [run.manifest["metrics"]["eval_loss"] for run in (plain, recomputed)]
    assert evals[0] == pytest.approx(evals[1], abs=1e-5)
    for name, parameter in plain.job.model.named_parameters():
        other = dict(recomputed.job.model.named_parameters())[name]
        assert torch.allclose(parameter, other, atol=1e-5), name


def test_one_evaluation_at_the_end_and_one_speed_everywhere(tmp_path, tiny_model_dir):
    run = train(tmp_path, tiny_model_dir)
    metrics = run.manifest["metrics"]
    # The Trainer evaluates at the last step; that result is the manifest's, not a second pass.
    assert [e["step"] for e in run.log if "eval_loss" in e] == [3]
    assert metrics["eval_loss"] == next(e["eval_loss"] for e in run.log if "eval_loss" in e)
    for key in ("train_loop_seconds", "eval_seconds", "save_seconds"):
        assert metrics[key] >= 0, key
    assert metrics["train_loop_seconds"] <= metrics["train_seconds"]  # evals and saves left out
    speed = metrics["tokens_per_s"]
    assert speed > 0 and metrics["tokens_seen"] > 0
    # The progress callback's last line and the last step's metrics.jsonl entry show the same.
    last_line = [line for line in run.console.splitlines() if line.startswith("step 3/3:")][-1]
    assert f", {speed:.0f} tokens/s," in last_line
    assert (
        next(e for e in run.log if e.get("loss") is not None and e["step"] == 3)["tokens_per_s"]
        == speed
    )


def test_auto_checkpointing_turns_on_when_the_plan_does_not_fit(
    tmp_path, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("TUNEWRIGHT_MEMORY_GB", "0.001")  # a device with 1 MB
    path = make_project(tmp_path, model=tiny_model_dir, rows=addition_rows(24), train=TRAIN)
    job = build_job(load_config(path), console=None)
    lever = job.levers["gradient_checkpointing"]
    assert lever.value is True
    assert lever.source.startswith("auto: without it the plan does not fit")
    assert checkpointing_on(job.model)


@pytest.mark.parametrize("optimizer", ["adamw_fused", "adamw_8bit", "adafactor"])
def test_each_optimizer_trains(tmp_path, tiny_model_dir, optimizer):
    # r=64: the 64x64 LoRA matrices reach bitsandbytes' 4,096-value floor for 8-bit states.
    run = train(tmp_path, tiny_model_dir, optimizer=optimizer, lora={"r": 64})
    assert run.manifest["levers"]["optimizer"] == {"value": optimizer, "source": "config"}
    assert all(math.isfinite(e["loss"]) for e in run.log if "loss" in e)
    after = dict(run.job.model.named_parameters())
    trainable = [n for n, (grad, _) in run.before.items() if grad]
    changed = [n for n in trainable if not torch.equal(run.before[n][1], after[n].detach())]
    assert len(changed) == len(trainable)
    for name, (grad, value) in run.before.items():
        assert grad or torch.equal(value, after[name].detach()), f"frozen {name} changed"


def test_8bit_adamw_keeps_8bit_states_on_this_cpu(tmp_path, tiny_model_dir):
    """What the Trainer builds for `adamw_8bit`, stepped once here: bitsandbytes' CPU path."""
    from transformers import Trainer

    from tunewright.training.args import training_arguments
    from tunewright.training.defaults import resolve_hyper

    train = {**TRAIN, "optimizer": "adamw_8bit", "lora": {"r": 64}}
    config = load_config(make_project(tmp_path, model=tiny_model_dir, train=train))
    job = build_job(config, console=None)
    hyper = resolve_hyper(config.train, job.n_params, len(job.train_features))
    args = training_arguments(config, hyper, tmp_path / "out", has_eval=False)
    optimizer_class, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, job.model)
    parameters = [p for p in job.model.parameters() if p.requires_grad]
    optimizer = optimizer_class(parameters, **kwargs)
    batch = job.collator(job.train_features[:4])
    job.model(**batch).loss.backward()
    optimizer.step()
    large = [p for p in parameters if p.numel() >= 4096]
    assert large and all(optimizer.state[p]["state1"].dtype == torch.uint8 for p in large)


def test_eager_attention_trains(tmp_path, tiny_model_dir):
    path = make_project(tmp_path, model=tiny_model_dir, rows=addition_rows(24), train=TRAIN)
    config = load_config(path, ["model.attn_implementation=eager"])
    job = build_job(config, console=None)
    run_job(config, job, console=Console(file=io.StringIO()))
    manifest = json.loads((tmp_path / "runs" / "default" / "train" / "manifest.json").read_text())
    assert manifest["levers"]["attn_implementation"] == {"value": "eager", "source": "config"}
    assert job.model.config._attn_implementation == "eager"  # packed rows: transformers' mask
    assert math.isfinite(manifest["metrics"]["final_loss"])


@NO_CUDA
def test_what_this_machine_cannot_run_is_refused_before_any_work(tmp_path, tiny_model_dir, run_cli):
    settings = {
        "gradient_checkpointing": True,
        "method": "prefix",
        "optimizer": "paged_adamw_8bit",
        "liger": True,
    }
    path = make_project(tmp_path, model=tiny_model_dir, train={**TRAIN, **settings})
    overrides = ["model.attn_implementation=flash_attention_2"]
    code, _, err = run_cli("validate", str(path), *overrides)
    assert code == 1
    for expected in (
        "train.gradient_checkpointing: PEFT's prefix tuning does not work with",
        "model.attn_implementation: flash_attention_2 runs on CUDA GPUs only",
        "train.optimizer: paged_adamw_8bit pages optimizer states",
        "train.liger: true needs a CUDA GPU",
    ):
        assert expected in " ".join(err.split()), expected
    code, _, err = run_cli("train", str(path), "train.method=lora", "train.liger=false")
    assert code == 1 and "paged_adamw_8bit" in err
    assert not (tmp_path / "runs").exists()  # refused before even the data stage


def test_plan_names_the_levers_that_make_it_fit(tmp_path, tiny_model_dir, run_cli, monkeypatch):
    # 20,000 examples per micro-batch: activations dwarf everything else in the estimate.
    train = {**TRAIN, "batch_size": 20000, "gradient_checkpointing": False}
    path = str(make_project(tmp_path, model=tiny_model_dir, train=train))
    monkeypatch.setenv("TUNEWRIGHT_MEMORY_GB", "1000")
    code, out, err = run_cli("plan", path, "--no-warmup", "--json")
    assert code == 0, err
    memory = json.loads(out)["memory"]
    without = sum(memory.values())
    kept = 2 * 42  # the tiny model's 2 layers x ACTIVATION_VALUES
    recomputed = without - memory["activations"] * (1 - (2 * 1 + 42) / kept)
    budget = (recomputed / 0.9 + without) / 2  # fits with checkpointing, not without
    monkeypatch.setenv("TUNEWRIGHT_MEMORY_GB", str(budget / 2**30))

    code, out, err = run_cli("plan", path, "--no-warmup")
    assert code == 0, err
    assert "may run out of memory" in err
    assert "gradient_checkpointing: false (config)" in out
    assert "fits with train.gradient_checkpointing: true (+50% step time)" in out

    code, out, err = run_cli("plan", path, "--no-warmup", "train.gradient_checkpointing=auto")
    assert code == 0, err
    assert "gradient_checkpointing: true (auto: without it the plan does not fit" in out
    assert "fits with" not in out and "may run out of memory" not in err
