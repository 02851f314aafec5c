"""Experiment trackers pointed at the run folder: TensorBoard always, W&B offline unless a key
is set, MLflow in a local SQLite store unless a tracking URI is set."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from tunewright.config import Config


@contextlib.contextmanager
def tracker_env(config: Config, stage_dir: Path, main: bool = True) -> Iterator[None]:
    """Point the trackers at the run folder, offline where no account is configured; the
    environment is restored afterwards. Only the `main` process creates anything (the
    trackers log from rank 0 alone)."""
    env = {"TENSORBOARD_LOGGING_DIR": str(stage_dir / "tensorboard")}
    if "wandb" in config.train.report_to:
        env.update({"WANDB_DIR": str(stage_dir), "WANDB_PROJECT": "tunewright"})
        # W&B would otherwise wrap sys.stdout/sys.stderr to upload the terminal: the metrics go
        # to it anyway, and a wrapper that outlives the run breaks whoever prints next.
        env["WANDB_CONSOLE"] = os.environ.get("WANDB_CONSOLE", "off")
        if not os.environ.get("WANDB_API_KEY"):
            env["WANDB_MODE"] = "offline"
    if "mlflow" in config.train.report_to:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{stage_dir / 'mlflow.db'}"
        env.update({"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "tunewright"})
        # MLflow otherwise phones home from a background thread (unreachable offline, and its
        # DNS lookup from that thread has crashed the process here).
        env["MLFLOW_DISABLE_TELEMETRY"] = os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true")
    saved = {k: os.environ.get(k) for k in env}
    # W&B swaps the process's hooks (sys.excepthook, sys.exit) for its own and, on teardown, may
    # put back the streams it saw first in this process, possibly long closed: the caller gets
    # its own back once the run is over.
    hooks = sys.stdout, sys.stderr, sys.excepthook, sys.exit
    os.environ.update(env)
    try:
        if "mlflow" in config.train.report_to and main:
            _ensure_mlflow_experiment(env["MLFLOW_TRACKING_URI"], stage_dir / "mlruns")
        yield
    finally:
        if "wandb" in config.train.report_to:
            _end_wandb()
        sys.stdout, sys.stderr, sys.excepthook, sys.exit = hooks
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _end_wandb() -> None:
    """Finish the W&B run and close W&B's process-wide session. The HF callback leaves its run
    open, and the session keeps the settings (WANDB_DIR, mode) it first read: a second training
    in the same process (a notebook, the test suite) would log into the old run, in the old
    run's folder."""
    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()


def _ensure_mlflow_experiment(uri: str, artifacts: Path) -> None:
    """Create the experiment with its artifacts in the run folder (MLflow's default is
    ./mlruns under whatever the working directory happens to be)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name("tunewright") is None:
        mlflow.create_experiment("tunewright", artifact_location=artifacts.as_uri())
