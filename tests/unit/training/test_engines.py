"""The one translation from `train.distributed` / `fsdp` / `deepspeed` to TrainingArguments,
and which engine a run plans for."""

from __future__ import annotations

import json

import pytest

from tunewright.config import load_config
from tunewright.errors import ConfigError
from tunewright.training.distributed import DistContext
from tunewright.training.engines import (
    EngineUnavailableError,
    deepspeed_settings,
    engine_arguments,
    fsdp_settings,
    plan_engine,
)

TWO = DistContext(world_size=2, rank=0, local_rank=0, local_world_size=2, backend="gloo")


class FakeModel:
    _no_split_modules = ("LlamaDecoderLayer",)


def test_one_process_runs_single_whatever_was_asked():
    plan = plan_engine(load_config(None, ["train.distributed=fsdp"]), DistContext())
    assert plan.engine == "single" and "nothing to split" in (plan.note or "")
    assert plan_engine(load_config(None), DistContext()).note is None


def test_fsdp_no_shard_is_ddp_and_says_so():
    plan = plan_engine(
        load_config(None, ["train.distributed=fsdp", "train.fsdp.sharding=no_shard"]), TWO
    )
    assert plan.engine == "ddp" and "DDP" in plan.note


@pytest.mark.parametrize("method", ["prefix", "prompt", "qlora"])
def test_methods_fsdp_cannot_run_fail_before_work(method):
    config = load_config(None, ["train.distributed=fsdp", f"train.method={method}"])
    with pytest.raises(EngineUnavailableError, match=f"train.method {method}"):
        plan_engine(config, TWO)


@pytest.mark.parametrize(
    ("sharding", "reshard"),
    [("full_shard", True), ("shard_grad_op", False), ("hybrid_shard", True)],
)
def test_fsdp_settings(sharding, reshard):
    config = load_config(None, [f"train.fsdp.sharding={sharding}", "train.fsdp.cpu_offload=true"])
    settings = fsdp_settings(config, FakeModel())
    assert settings["version"] == 2
    assert settings["reshard_after_forward"] is reshard
    assert settings["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert settings["state_dict_type"] == "SHARDED_STATE_DICT"
    assert settings["cpu_offload"] is False  # nothing to offload to on a CPU-only machine


def test_hybrid_shard_replicates_across_machines_only(monkeypatch):
    import torch

    config = load_config(None, ["train.distributed=fsdp", "train.fsdp.sharding=hybrid_shard"])
    plan = plan_engine(config, TWO)
    assert "parallelism_config" not in engine_arguments(config, plan, TWO, FakeModel())
    two_nodes = DistContext(world_size=4, rank=0, local_world_size=2, backend="gloo")
    on_cpu = plan_engine(config, two_nodes)
    assert not on_cpu.hybrid and "full_shard" in on_cpu.note
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    plan = plan_engine(config, two_nodes)
    mesh = engine_arguments(config, plan, two_nodes, FakeModel())["parallelism_config"]
    assert (mesh.dp_replicate_size, mesh.dp_shard_size) == (2, 2)


def test_ddp_and_single_add_no_arguments():
    config = load_config(None)
    assert engine_arguments(config, plan_engine(config, TWO), TWO, FakeModel()) == {}


def test_model_without_layer_class_cannot_use_fsdp():
    class Opaque:
        _no_split_modules = None

    with pytest.raises(EngineUnavailableError, match="decoder layer class"):
        fsdp_settings(load_config(None), Opaque())


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_deepspeed_inline_settings(stage):
    settings = deepspeed_settings(load_config(None, [f"train.deepspeed.stage={stage}"]))
    zero = settings["zero_optimization"]
    assert zero["stage"] == stage
    # The Trainer fills these from its own arguments, so they cannot disagree with them.
    for key in (
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert settings[key] == "auto"
    assert settings["bf16"] == {"enabled": "auto"} and settings["fp16"] == {"enabled": "auto"}
    assert ("stage3_gather_16bit_weights_on_model_save" in zero) == (stage == 3)
    assert "optimizer" not in settings  # the Trainer's own torch AdamW


def test_deepspeed_offload_uses_cpu_adam_and_cpu_params():
    config = load_config(
        None,
        [
            "train.deepspeed.stage=3",
            "train.deepspeed.offload_optimizer=true",
            "train.deepspeed.offload_param=true",
        ],
    )
    settings = deepspeed_settings(config)
    assert settings["zero_optimization"]["offload_optimizer"] == {"device": "cpu"}
    assert settings["zero_optimization"]["offload_param"] == {"device": "cpu"}
    assert settings["optimizer"]["type"] == "AdamW"
    assert settings["optimizer"]["params"]["lr"] == "auto"


def test_deepspeed_inline_settings_are_checked():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.deepspeed.stage=2", "train.deepspeed.offload_param=true"])
    assert "train.deepspeed: offload_param needs stage 3" in str(info.value)
    with pytest.raises(ConfigError, match="both set"):
        load_config(None, ["train.deepspeed.config=ds.json", "train.deepspeed.stage=3"])


def test_deepspeed_file_is_used_as_is(tmp_path):
    file = tmp_path / "ds.json"
    written = {"zero_optimization": {"stage": 2}, "bf16": {"enabled": "auto"}, "steps_per_print": 5}
    file.write_text(json.dumps(written))
    config = load_config(None, [f"train.deepspeed.config={file}"])
    assert deepspeed_settings(config) == written


def test_deepspeed_file_precision_must_match_training(tmp_path):
    file = tmp_path / "ds.json"
    file.write_text(json.dumps({"zero_optimization": {"stage": 2}, "bf16": {"enabled": True}}))
    config = load_config(None, [f"train.deepspeed.config={file}", "train.precision=fp32"])
    with pytest.raises(
        ConfigError, match=r"bf16\.enabled is true but train\.precision resolves to float32"
    ):
        deepspeed_settings(config)
    ok = load_config(None, [f"train.deepspeed.config={file}", "train.precision=bf16"])
    assert deepspeed_settings(ok)["bf16"] == {"enabled": True}


def test_deepspeed_file_missing_or_broken(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        deepspeed_settings(load_config(None, [f"train.deepspeed.config={tmp_path / 'no.json'}"]))
    broken = tmp_path / "broken.json"
    broken.write_text("{stage: 2")
    with pytest.raises(ConfigError, match="invalid JSON"):
        deepspeed_settings(load_config(None, [f"train.deepspeed.config={broken}"]))


def test_training_arguments_carry_the_engine(tmp_path):
    """TrainingArguments accept what `engine_arguments` gives for FSDP (a 2-process layout is
    not needed to build them)."""
    from tunewright.training.args import training_arguments
    from tunewright.training.defaults import resolve_hyper

    config = load_config(None, ["train.distributed=fsdp", "train.precision=fp32"])
    hyper = resolve_hyper(config.train, 135_000_000, 100, processes=2)
    engine = engine_arguments(config, plan_engine(config, TWO), TWO, FakeModel())
    args = training_arguments(
        config, hyper, tmp_path, False, engine=engine, every_parameter_used=True
    )
    assert args.fsdp and args.fsdp_config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert args.ddp_find_unused_parameters is False
    assert args.include_num_input_tokens_seen == "all"
    assert hyper.grad_accum == 1 and hyper.global_batch == 16  # auto 8 x 2 keeps its total
