"""Two processes over gloo train the tiny model with DDP and with FSDP: the loss at every step
matches one process with the same global batch, the run folder has the same layout, and the
manifest names the engine that really ran, with each rank's share of the parameters.

Tolerance: in fp32 the only difference from one process is the order of summation (each rank
reduces its half of the batch, then gloo adds the halves), which moves a loss by ~1e-7
relative (measured: at most 2e-7 over 4 steps). rtol 1e-4 leaves room for that to compound,
while a wrong batch split or loss normalisation moves the loss by 1e-2 or more. The adapters
agree to 2e-5 (measured 5e-6 on weights up to 0.13): AdamW divides each update by the
gradient's running RMS, which enlarges rounding differences in near-zero gradients.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.support.processes import run_captured
from tests.support.projects import addition_rows, make_project

RTOL = 1e-4
ADAPTER_ATOL = 2e-5
STEPS = 4


def write_project(folder: Path, model: Path, batch_size: int) -> Path:
    # Dropout 0 and a fixed data seed: one process and two see the same examples per step.
    train = {
        "max_steps": STEPS,
        "batch_size": batch_size,
        "grad_accum": 1,
        "learning_rate": 0.01,
        "save_every": 2,
        "eval_every": 2,
        "lora": {"dropout": 0},
    }
    return make_project(folder, model=model, rows=addition_rows(24), train=train)


def run(command: list[str], timeout: int = 240) -> str:
    code, output = run_captured(command, timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert code == 0, output[-4000:]
    return output


def train_dir(config: Path) -> Path:
    return config.parent / "runs" / "default" / "train"


def losses(config: Path) -> dict[int, float]:
    lines = (train_dir(config) / "metrics.jsonl").read_text().splitlines()
    return {e["step"]: e["loss"] for e in map(json.loads, lines) if "loss" in e}


def layout(folder: Path) -> set[str]:
    """Relative paths under the train folder, checkpoints' insides left out (engine-specific)."""
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if "checkpoints/" not in str(p.relative_to(folder)) and "tensorboard" not in str(p)
    }


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_model_dir) -> Path:
    """The reference: one process, batch 4 (= 2 processes x 2)."""
    config = write_project(tmp_path_factory.mktemp("single") / "p", tiny_model_dir, 4)
    run([sys.executable, "-m", "tunewright", "train", str(config)])
    return config


def test_ddp_through_plain_torchrun_matches_one_process(tmp_path, tiny_model_dir, single):
    config = write_project(tmp_path / "ddp", tiny_model_dir, 2)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    output = run([*torchrun, "-m", "tunewright", "train", str(config)])

    # No launcher prepared the data here: rank 0 did, once, while rank 1 waited.
    assert output.count("data: preparing") == 1
    assert output.count("trained 4 steps") == 1  # only rank 0 talks
    check_against_single(config, single, engine="ddp")
    per_rank = manifest(config)["distributed"]["parameters_per_rank"]
    assert per_rank == [manifest(config)["distributed"]["parameters"]] * 2  # whole copies


def test_fsdp_shards_matches_one_process_and_resumes(tmp_path, tiny_model_dir, single):
    config = write_project(tmp_path / "fsdp", tiny_model_dir, 2)
    launch = [sys.executable, "-m", "tunewright", "train", str(config), "--nproc", "2"]
    output = run([*launch, "train.distributed=fsdp"])
    assert "torch.distributed.run --nproc-per-node=2 --standalone" in output
    check_against_single(config, single, engine="fsdp")
    report = manifest(config)["distributed"]
    # Really sharded: each rank holds about half the parameters, together all of them.
    assert sum(report["parameters_per_rank"]) == report["parameters"]
    assert all(n < report["parameters"] * 0.6 for n in report["parameters_per_rank"])
    assert report["fsdp"] == {
        "sharding": "full_shard",
        "wrapped": ["LlamaDecoderLayer"],
        "cpu_offload": False,
    }
    checkpoint = train_dir(config) / "checkpoints" / "checkpoint-4"
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir()  # written shard by shard
    assert {"rng_state_0.pth", "rng_state_1.pth", "tunewright-complete.json"} <= {
        p.name for p in checkpoint.iterdir()
    }

    # As if killed after checkpoint 2: resume from the sharded checkpoint, same ending.
    uninterrupted, adapter = losses(config), load_adapter(config)
    shutil.rmtree(checkpoint)
    shutil.rmtree(train_dir(config) / "adapter")
    (train_dir(config) / "manifest.json").unlink()
    run([*launch, "train.distributed=fsdp", "--resume"])
    assert manifest(config)["resumed_from"].endswith("checkpoint-2")
    assert losses(config) == pytest.approx(uninterrupted, rel=RTOL)
    for name, tensor in load_adapter(config).items():
        assert torch.allclose(tensor, adapter[name], atol=1e-6), name


def test_deepspeed_zero3_matches_one_process(tmp_path, tiny_model_dir, single):
    """Runs where deepspeed is installed (it is not a tunewright dependency); the first run
    on a machine may spend minutes building DeepSpeed's C++ ops."""
    pytest.importorskip("deepspeed")
    config = write_project(tmp_path / "zero3", tiny_model_dir, 2)
    launch = [sys.executable, "-m", "tunewright", "train", str(config), "--nproc", "2"]
    run([*launch, "train.distributed=deepspeed", "train.deepspeed.stage=3"], timeout=600)
    check_against_single(config, single, engine="deepspeed")
    report = manifest(config)["distributed"]
    assert report["deepspeed"] == {"zero_stage": 3}
    assert sum(report["parameters_per_rank"]) == report["parameters"]  # partitioned


def test_method_fsdp_cannot_run_fails_before_starting(tmp_path, tiny_model_dir, run_cli):
    config = write_project(tmp_path / "prefix", tiny_model_dir, 2)
    code, _, err = run_cli(
        "train", str(config), "--nproc", "2", "train.method=prefix", "train.distributed=fsdp"
    )
    assert code == 1 and "does not work with train.distributed fsdp" in err
    assert not (config.parent / "runs").exists()


def check_against_single(config: Path, single: Path, engine: str) -> None:
    expected, got = losses(single), losses(config)
    assert sorted(got) == list(range(1, STEPS + 1))
    assert got == pytest.approx(expected, rel=RTOL)
    assert layout(train_dir(config)) == layout(train_dir(single))
    meta, reference = manifest(config), manifest(single)
    assert meta["distributed"]["engine"] == engine and meta["distributed"]["processes"] == 2
    assert reference["distributed"]["engine"] == "single"
    hyper = meta["hyperparameters"]
    assert (hyper["batch_size"], hyper["processes"], hyper["global_batch"]) == (2, 2, 4)
    assert meta["peak_rss_mb"] > 0 and len(meta["peak_rss_mb_per_rank"]) == 2
    assert meta["metrics"]["tokens_seen"] == reference["metrics"]["tokens_seen"]  # all ranks
    expected_adapter = load_adapter(single)
    for name, tensor in load_adapter(config).items():
        assert torch.allclose(tensor, expected_adapter[name], atol=ADAPTER_ATOL), name


def manifest(config: Path) -> dict:
    return json.loads((train_dir(config) / "manifest.json").read_text())


def load_adapter(config: Path) -> dict[str, torch.Tensor]:
    return load_file(train_dir(config) / "adapter" / "adapter_model.safetensors")
