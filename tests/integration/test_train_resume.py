"""A run killed with SIGKILL and resumed ends with the same adapter as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from tests.support.projects import addition_rows, write_jsonl

from tunewright.training.callbacks import COMPLETE_MARK, last_complete_checkpoint

STEPS = 300


def project(folder: Path, model: Path) -> Path:
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", addition_rows(40))
    config = folder / "config.yaml"
    config.write_text(
        f"model:\n  name: {model}\ndata:\n  train: train.jsonl\n"
        f"train:\n  max_steps: {STEPS}\n  batch_size: 4\n  grad_accum: 2\n"
        "  learning_rate: 0.002\n  save_every: 20\n  eval_every: 20\n  keep_checkpoints: 3\n"
        "  report_to: []\n"
    )
    return config


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tunewright", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(
        folder / "runs" / "default" / "train" / "adapter" / "adapter_model.safetensors"
    )


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_model_dir):
    reference, killed = (
        project(tmp_path / "ref", tiny_model_dir),
        project(tmp_path / "killed", tiny_model_dir),
    )
    ref_run = cli("train", str(reference))

    run = cli("train", str(killed))
    checkpoints = killed.parent / "runs" / "default" / "train" / "checkpoints"
    deadline = time.monotonic() + 120
    while not (checkpoints / "checkpoint-40" / COMPLETE_MARK).is_file():
        assert run.poll() is None, run.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    train_dir = checkpoints.parent
    assert not (train_dir / "adapter").exists() and not (train_dir / "manifest.json").exists()
    last = last_complete_checkpoint(checkpoints)
    assert last is not None and int(last.name.split("-")[1]) < STEPS

    resumed = cli("train", str(killed), "--resume")
    output = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, output[-3000:]
    assert ref_run.wait(timeout=300) == 0, ref_run.stdout.read().decode()[-3000:]

    manifest = json.loads((train_dir / "manifest.json").read_text())
    assert manifest["resumed_from"] == str(last)
    assert manifest["metrics"]["steps"] == STEPS
    expected, got = adapter(reference.parent), adapter(killed.parent)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.allclose(expected[name], got[name], atol=1e-5), name
    steps = [
        json.loads(line)["step"] for line in (train_dir / "metrics.jsonl").read_text().splitlines()
    ]
    train_steps = [s for s in steps if s]
    assert sorted(set(train_steps)) == list(range(1, STEPS + 1))
