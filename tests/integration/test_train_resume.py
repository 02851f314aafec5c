"""A run killed with SIGKILL and resumed ends with the same adapter as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from tests.support.processes import run_captured, started
from tests.support.projects import make_project

from tunewright.training.callbacks import COMPLETE_MARK, last_complete_checkpoint

STEPS = 300
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def project(folder: Path, model: Path) -> Path:
    train = {
        "max_steps": STEPS,
        "batch_size": 4,
        "grad_accum": 2,
        "learning_rate": 0.002,
        "save_every": 20,
        "eval_every": 20,
        "keep_checkpoints": 3,
    }
    return make_project(folder, model=model, train=train)


def tunewright(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunewright", *args]


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(
        folder / "runs" / "default" / "train" / "adapter" / "adapter_model.safetensors"
    )


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_model_dir):
    reference, killed = (
        project(tmp_path / "ref", tiny_model_dir),
        project(tmp_path / "killed", tiny_model_dir),
    )
    ref_log, killed_log = tmp_path / "ref.log", tmp_path / "killed.log"
    with (
        started(tunewright("train", str(reference)), ENV, log=ref_log) as ref_run,
        started(tunewright("train", str(killed)), ENV, log=killed_log) as run,
    ):
        checkpoints = killed.parent / "runs" / "default" / "train" / "checkpoints"
        # Waits for the event itself, however slow the machine; a run that ends first fails.
        while not (checkpoints / "checkpoint-40" / COMPLETE_MARK).is_file():
            assert run.poll() is None, killed_log.read_text()[-2000:]
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert run.returncode == -signal.SIGKILL
        train_dir = checkpoints.parent
        assert not (train_dir / "adapter").exists() and not (train_dir / "manifest.json").exists()
        last = last_complete_checkpoint(checkpoints)
        assert last is not None and int(last.name.split("-")[1]) < STEPS

        # No time limits of its own: pytest-timeout bounds the test, and leaving the `with`
        # kills whatever still runs.
        code, output = run_captured(tunewright("train", str(killed), "--resume"), None, ENV)
        assert code == 0, output[-3000:]
        assert ref_run.wait() == 0, ref_log.read_text()[-3000:]

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
