"""Trackers write real files offline: TensorBoard events, a W&B offline run, an MLflow store."""

from __future__ import annotations

import json
import sqlite3
import sys

from tests.support.projects import addition_rows, make_project

from tunewright.config import load_config
from tunewright.training.stage import train_model


def test_trackers_write_offline_runs(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # anything written relative to the cwd would show up here
    trackers = ["tensorboard", "wandb", "mlflow"]
    train = {"max_steps": 3, "batch_size": 4, "grad_accum": 1, "report_to": trackers}
    config = make_project(tmp_path, model=tiny_model_dir, rows=addition_rows(20), train=train)
    train_model(load_config(config))
    stage = tmp_path / "runs" / "default" / "train"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((stage / "tensorboard").rglob("events.out.*")).parent))
    events.Reload()
    assert len(events.Scalars("train/loss")) == 3

    offline = list((stage / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))

    with sqlite3.connect(stage / "mlflow.db") as db:
        steps = db.execute("select step from metrics where key = 'loss' order by step").fetchall()
    assert [s for (s,) in steps] == [1, 2, 3]
    assert not (tmp_path / "mlruns").exists()

    assert (stage / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3]
    assert all(m["tokens_per_s"] > 0 for m in metrics if "loss" in m)


def test_a_second_run_in_the_same_process_gets_its_own_wandb_run(tmp_path, tiny_model_dir):
    """W&B keeps one session per process; each training must still log into its own folder."""
    train = {"max_steps": 1, "batch_size": 4, "grad_accum": 1, "report_to": ["wandb"]}
    stages = []
    for name in ("first", "second"):
        config = make_project(
            tmp_path / name, model=tiny_model_dir, rows=addition_rows(12), name=name, train=train
        )
        hooks = sys.stdout, sys.stderr, sys.excepthook, sys.exit
        train_model(load_config(config))
        # W&B swaps the process's streams and hooks; what it leaves behind outlives the run
        assert (sys.stdout, sys.stderr, sys.excepthook, sys.exit) == hooks
        stages.append(tmp_path / name / "runs" / name / "train")
    for stage in stages:
        assert len(list((stage / "wandb").glob("offline-run-*"))) == 1, stage
