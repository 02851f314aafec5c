"""`tunewright plan`: parameter counts from the meta-device model, token counts from the
rendered data, memory by component and engine, and the ETA arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.projects import addition_rows, make_project

from tunewright.config import load_config
from tunewright.training import memory as planner
from tunewright.training.defaults import resolve_hyper
from tunewright.training.memory import (
    ACTIVATION_VALUES,
    ADAM_BYTES,
    NF4_BYTES,
    PlanResult,
    Shapes,
    Tokens,
    estimate_memory,
    meta_shapes,
)
from tunewright.training.plan import eta_seconds


def write_project(folder: Path, model: Path) -> Path:
    train = {"epochs": 2, "batch_size": 4, "grad_accum": 1, "precision": "fp32"}
    return make_project(folder, model=model, rows=addition_rows(30), train=train)


@pytest.mark.parametrize("method", ["lora", "full", "ia3"])
def test_meta_counts_match_the_loaded_model(tmp_path, tiny_model_dir, method):
    from tunewright.training.stage import build_job

    config = load_config(write_project(tmp_path, tiny_model_dir), [f"train.method={method}"])
    shapes = meta_shapes(config, tiny_model_dir)
    model = build_job(config).model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert shapes.trainable_params == trainable
    assert shapes.trainable_bytes == 4 * trainable
    assert shapes.frozen_bytes == 4 * frozen
    assert (shapes.layers, shapes.hidden) == (2, 64)


def test_qlora_counts_decoder_linears_at_four_bits(tmp_path, tiny_model_dir):
    lora = meta_shapes(load_config(write_project(tmp_path, tiny_model_dir)), tiny_model_dir)
    config = load_config(write_project(tmp_path, tiny_model_dir), ["train.method=qlora"])
    qlora = meta_shapes(config, tiny_model_dir)
    linear = 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128)  # q,o + k,v + gate,up,down per layer
    assert qlora.frozen_bytes == pytest.approx(lora.frozen_bytes - linear * (4 - NF4_BYTES))
    assert qlora.trainable_params == lora.trainable_params


def shapes() -> Shapes:
    return Shapes(
        layers=10,
        hidden=100,
        vocab=1000,
        frozen_bytes=4e8,
        trainable_params=10**6,
        trainable_bytes=4 * 10**6,
        total_params=10**8,
    )


def tokens() -> Tokens:
    return Tokens(
        examples=100,
        total=10_000,
        loss_total=4_000,
        mean=100.0,
        p95=120,
        eval_total=1_000,
        batch_tokens=400,
        peak_batch_tokens=480,
        peak_loss_tokens=192,
    )


def test_memory_components(monkeypatch):
    monkeypatch.setattr(planner, "_runtime_bytes", lambda device: 5e8)
    monkeypatch.setattr(planner, "_available_bytes", lambda device, n: 1e10)
    result = estimate_memory(load_config(None, ["train.precision=fp32"]), shapes(), tokens(), 1)
    memory = result.memory
    assert memory["weights"] == 4e8
    assert memory["adapter"] == memory["gradients"] == 4e6
    assert memory["optimizer"] == ADAM_BYTES * 10**6
    assert memory["activations"] == 10 * 480 * 100 * ACTIVATION_VALUES * 4
    assert memory["logits"] == 192 * 1000 * 4 * 3
    assert result.per_device == pytest.approx(sum(memory.values()))
    assert result.fits == "fits" and result.engine == "single"


def test_sharding_engines_divide_what_they_shard(monkeypatch):
    monkeypatch.setattr(planner, "_runtime_bytes", lambda device: 0.0)
    monkeypatch.setattr(planner, "_available_bytes", lambda device, n: 1e10)
    ddp = estimate_memory(load_config(None), shapes(), tokens(), 4).memory
    fsdp = estimate_memory(load_config(None, ["train.distributed=fsdp"]), shapes(), tokens(), 4)
    zero2 = estimate_memory(
        load_config(None, ["train.distributed=deepspeed"]), shapes(), tokens(), 4
    )
    assert ddp["gradients"] == 2 * 4e6  # DDP's bucket copy
    assert fsdp.memory["optimizer"] == ddp["optimizer"] / 4
    assert fsdp.memory["weights"] == pytest.approx(4e8 / 4 + (4e8 + 4e6) / 10)  # + one layer
    assert zero2.memory["weights"] == 4e8 and zero2.memory["gradients"] == 4e6 / 4
    assert fsdp.per_device < ddp["weights"] + ddp["optimizer"]


def test_too_big_warns_and_skips_the_warmup(monkeypatch, tmp_path, tiny_model_dir, run_cli):
    monkeypatch.setattr(planner, "_available_bytes", lambda device, n: 1e6)
    code, out, err = run_cli("plan", str(write_project(tmp_path, tiny_model_dir)))
    assert code == 0
    assert "does not fit" in out and "may run out of memory" in err
    assert "no warm-up" in out


def test_eta_counts_epochs_and_evaluations():
    settings = [
        "train.epochs=2",
        "train.batch_size=4",
        "train.grad_accum=1",
        "train.eval_every=epoch",
    ]
    config = load_config(None, settings)
    hyper = resolve_hyper(config.train, 10**8, 100)
    result = PlanResult("cpu", 1, "single", {}, 0.0, 1.0, "fits", tokens(), {}, tokens_per_s=100.0)
    # 2 epochs x 10,000 tokens + 3 evaluations (2 epochs + final) x 1,000 tokens at 1/3 cost
    assert eta_seconds(config, tokens(), hyper, result) == pytest.approx((20_000 + 1_000) / 100)


def test_plan_cli_json_with_a_measured_warmup(tmp_path, tiny_model_dir, run_cli):
    code, out, err = run_cli("plan", str(write_project(tmp_path, tiny_model_dir)), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["memory"]) == {
        "runtime",
        "weights",
        "adapter",
        "gradients",
        "optimizer",
        "activations",
        "logits",
    }
    assert result["fits"] == "fits" and result["tokens"]["examples"] == 27  # 30 - 10% eval
    assert result["tokens_per_s"] > 0 and result["eta_seconds"] > 0
    assert result["hyper"]["global_batch"] == 4
