"""Run folders and manifests.

Layout of a run folder `<runs_dir>/<name>/`; every path inside it comes from a function here:

    config.yaml               the resolved config, secrets redacted      resolved_config
    data/                     the data stage                             stage_dir(run, DATA)
      train.jsonl eval.jsonl rejected.jsonl                              data_split
      validation.json         the data report                            validation_report
      export/                 default target of `tunewright data export` data_export_dir
    train/                    the training stage
      adapter/ or model/      PEFT adapter, or full fine-tuned weights   trained_output
      loss.png                                                           loss_plot
      metrics.jsonl           every logged step and evaluation           train_history
    eval/                     metrics.json, report.html                  eval_metrics, eval_report
    export/                   merged/, model-<dtype>/, gguf-<quant>/     merged_dir
    serve/requests.jsonl      the default request log                    request_log
    openai/                   the OpenAI backend's job state             stage_dir(run, OPENAI)

Each stage folder is closed by a `manifest.json`. A stage folder without a manifest is
incomplete: the stage crashed or is still running.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tunewright.config import Config, config_hash, config_to_dict, config_to_yaml
from tunewright.files import atomic_write_json, atomic_write_text, sha256_file

MANIFEST = "manifest.json"
LIBRARIES = ("tunewright", "torch", "transformers", "peft", "trl", "datasets", "accelerate")


# ---------------------------------------------------------------------------------------------
# The layout. Each function takes the config, or the run folder itself where a caller has only
# that (a model card, a request log).

DATA, TRAIN, EVAL, EXPORT, SERVE, OPENAI = "data", "train", "eval", "export", "serve", "openai"
ADAPTER, FULL_MODEL = "adapter", "model"  # what the train stage writes, by method
MERGED = "merged"
REQUEST_LOG = "requests.jsonl"


def run_folder(run: Config | Path) -> Path:
    """`<runs_dir>/<name>/` of a config, or the run folder given."""
    return run.run_dir if isinstance(run, Config) else Path(run)


def stage_dir(run: Config | Path, stage: str) -> Path:
    return run_folder(run) / stage


def resolved_config(run: Config | Path) -> Path:
    return run_folder(run) / "config.yaml"


def data_split(run: Config | Path, split: str) -> Path:
    """`<run>/data/<split>.jsonl`: train, eval or rejected."""
    return stage_dir(run, DATA) / f"{split}.jsonl"


def validation_report(run: Config | Path) -> Path:
    return stage_dir(run, DATA) / "validation.json"


def data_export_dir(run: Config | Path) -> Path:
    return stage_dir(run, DATA) / "export"


def loss_plot(run: Config | Path) -> Path:
    return stage_dir(run, TRAIN) / "loss.png"


def train_history(run: Config | Path) -> Path:
    return stage_dir(run, TRAIN) / "metrics.jsonl"


def trained_output(run: Config | Path) -> Path | None:
    """`<run>/train/adapter` or `<run>/train/model`, or None when there is no trained result.

    One rule for every stage that reads it: the train stage completed (its manifest exists), the
    folder exists, and the manifest lists it among its outputs when the manifest has that key (a
    folder left by an earlier run with another method is not this run's result)."""
    folder = stage_dir(run, TRAIN)
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    listed = manifest.get("outputs")
    for name in (ADAPTER, FULL_MODEL):
        if (folder / name).is_dir() and (listed is None or name in listed):
            return folder / name
    return None


def eval_metrics(run: Config | Path) -> Path:
    return stage_dir(run, EVAL) / "metrics.json"


def eval_report(run: Config | Path) -> Path:
    return stage_dir(run, EVAL) / "report.html"


def judge_cache(run: Config | Path) -> Path:
    """The judge's replies, one JSON line per request, so a rerun of eval costs nothing."""
    return stage_dir(run, EVAL) / "judge_cache.jsonl"


def merged_dir(run: Config | Path) -> Path:
    return stage_dir(run, EXPORT) / MERGED


def request_log(run: Config | Path) -> Path:
    return stage_dir(run, SERVE) / REQUEST_LOG


def run_of_request_log(log_path: Path) -> Path:
    """The run folder of a request log at `<run>/serve/requests.jsonl`."""
    return Path(log_path).resolve().parent.parent


def run_of_adapter(folder: Path) -> Path | None:
    """The run folder of a `<run>/train/adapter` folder; None for any other folder."""
    folder = Path(folder)
    if folder.name == ADAPTER and folder.parent.name == TRAIN:
        return folder.parent.parent
    return None


# ---------------------------------------------------------------------------------------------
# Manifests


def hash_inputs(paths: list[Path]) -> dict[str, str]:
    """sha256 of each input file; a folder contributes every file under it."""
    hashes: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            hashes[str(file)] = sha256_file(file)
    return hashes


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    """The stage's manifest, or None when the stage never completed."""
    path = Path(stage_dir) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class StageRun:
    """One stage's run: its folder, the inputs it read and the outputs it wrote."""

    config: Config
    stage: str
    inputs: list[Path]
    dir: Path
    started: float = field(default_factory=time.time)
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def output(self, relative: str) -> Path:
        """Path for an output inside the stage folder; records it in the manifest."""
        if relative not in self.outputs:
            self.outputs.append(relative)
        return self.dir / relative

    def manifest(self) -> dict[str, Any]:
        now = time.time()
        return {
            "stage": self.stage,
            "run": self.config.name,
            "config_sha256": config_hash(self.config),
            "config": config_to_dict(self.config),
            "inputs": hash_inputs(self.inputs),
            "outputs": sorted(self.outputs),
            "seed": self.config.seed,
            "libraries": library_versions(),
            "git_commit": git_commit(self.config.base_dir),
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(),
            "wall_seconds": round(now - self.started, 3),
            **self.extra,
        }


@contextlib.contextmanager
def stage_run(config: Config, stage: str, inputs: list[Path] | None = None) -> Iterator[StageRun]:
    """Open `<run>/<stage>/` for writing; the manifest is written last, only on success.

    A stale manifest is removed first, so a crashed rerun never looks complete."""
    save_resolved_config(config)
    folder = stage_dir(config, stage)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST).unlink()
    run = StageRun(config=config, stage=stage, inputs=list(inputs or []), dir=folder)
    yield run
    atomic_write_json(folder / MANIFEST, run.manifest())


# The config sections each stage reads; a change elsewhere does not make its output stale.
DEPENDS = {
    "data": ("seed", "model", "data"),
    "train": ("seed", "model", "data", "train"),
    "eval": ("seed", "model", "data", "train", "eval"),
    "export": ("seed", "model", "train", "export"),
}


def is_up_to_date(config: Config, stage: str) -> bool:
    """True when `<run>/<stage>/` completed with the config sections it depends on unchanged and
    every input it read still has the same sha256."""
    manifest = read_manifest(stage_dir(config, stage))
    if manifest is None:
        return False
    current, saved = config_to_dict(config), manifest.get("config", {})
    if any(saved.get(key) != current.get(key) for key in DEPENDS[stage]):
        return False
    return all(
        Path(path).is_file() and sha256_file(Path(path)) == digest
        for path, digest in manifest["inputs"].items()
    )


def save_resolved_config(config: Config) -> Path:
    """Write `<run>/config.yaml` (secrets redacted); rewritten only when the config changed."""
    path = resolved_config(config)
    text = config_to_yaml(config)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return path
