"""Crash safety, shared by bench/crash_matrix.py and tests/integration/test_crash_safety.py.

A kill trial: restore the run folder as it stood before a stage (`Reference`, built once by
running every stage uninterrupted and copying the project after each), start the stage's
command, SIGKILL it after a delay, then

(a) `check_on_disk`: nothing looks complete that is not. Every JSON, JSONL, YAML, PNG and
    safetensors file in the run folder parses (skipping hidden temporary names and checkpoints
    without tunewright's completion mark, which no stage reads); every weights folder a later
    stage reads (`train/adapter`, `train/model`, `export/merged`, `export/model-*`) loads with
    its tokenizer; a marked checkpoint holds everything `--resume` loads; and a stage folder
    with a manifest has every output it lists, inputs that still hash as recorded, and the
    same outputs as the uninterrupted run;
(b) the stage's rerun (`train --resume` for training) exits 0, and leaves none of the killed
    run's temporaries behind;
(c) `compare`: its outputs equal the uninterrupted run's - bitwise for data, merge and export,
    within `ADAPTER_ATOL` / `LOSS_RTOL` for training.

The project always lives at the same path (`Reference.work`), so the absolute paths inside
manifests and reports are the same in every trial and in the reference.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tests.support.processes import run_captured, started
from tests.support.projects import make_project

from tunewright.files import read_jsonl, sha256_file

# Stage name -> (command, rerun command) after `tunewright`; CONFIG is the project's config.
COMMANDS = {
    "data": (["data", "prepare", "CONFIG"], ["data", "prepare", "CONFIG"]),
    "train": (["train", "CONFIG"], ["train", "CONFIG", "--resume"]),
    "merge": (["merge", "CONFIG"], ["merge", "CONFIG"]),
    "export": (["export", "CONFIG"], ["export", "CONFIG"]),
}
STAGES = tuple(COMMANDS)
# The run-folder stage each command writes (merge and export share export/).
FOLDER = {"data": "data", "train": "train", "merge": "export", "export": "export"}
# fresh: the stage has never run; over: a complete earlier result of the same stage is on disk.
MODES = ("fresh", "over")
ADAPTER_ATOL = 1e-5  # resumed against uninterrupted training, as in test_train_resume.py
LOSS_RTOL = 1e-4
WEIGHT_FOLDERS = ("train/adapter", "train/model", "export/merged", "export/model-*")


def environment(home: Path) -> dict[str, str]:
    """The children's environment: offline, one thread (steadier timing on shared cores)."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "TUNEWRIGHT_HOME": str(home),
    }


def tunewright(stage_args: list[str], config: Path) -> list[str]:
    args = [str(config) if arg == "CONFIG" else arg for arg in stage_args]
    return [sys.executable, "-m", "tunewright", *args]


# ---------------------------------------------------------------------------------------------
# The uninterrupted reference


@dataclass
class Reference:
    """The project at `work`, and copies of it before any stage ran (`snapshots["init"]`) and
    after each stage (`snapshots[stage]`); `seconds[stage]` is each stage's uninterrupted wall
    time, child start to exit."""

    root: Path
    env: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def config(self) -> Path:
        return self.work / "config.yaml"

    def snapshot(self, name: str) -> Path:
        return self.root / "snapshots" / name

    def run_folder(self, name: str | None = None) -> Path:
        """The run folder of `work`, or of the snapshot `name`."""
        base = self.work if name is None else self.snapshot(name)
        return base / "runs" / "default"

    def restore(self, name: str) -> None:
        """Make `work` exactly the snapshot `name`."""
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.copytree(self.snapshot(name), self.work, symlinks=True)


def build_reference(root: Path, model: Path, steps: int, save_every: int) -> Reference:
    """Run data prepare, train, merge and export uninterrupted on a small LoRA project, timing
    each and keeping a copy of the project after each."""
    ref = Reference(root, environment(root / "home"))
    make_project(
        ref.work,
        model=model,
        train={
            "max_steps": steps,
            "batch_size": 4,
            "grad_accum": 1,
            "learning_rate": 0.002,
            "save_every": save_every,
            "eval_every": steps,
            "keep_checkpoints": 2,
        },
    )
    shutil.copytree(ref.work, ref.snapshot("init"))
    for stage in STAGES:
        started_at = time.perf_counter()
        code, output = run_captured(tunewright(COMMANDS[stage][0], ref.config), None, ref.env)
        ref.seconds[stage] = time.perf_counter() - started_at
        if code != 0:
            raise RuntimeError(f"uninterrupted {stage} failed ({code}):\n{output[-3000:]}")
        shutil.copytree(ref.work, ref.snapshot(stage))
    return ref


def before(stage: str) -> str:
    """The snapshot a stage starts from."""
    index = STAGES.index(stage)
    return STAGES[index - 1] if index else "init"


# ---------------------------------------------------------------------------------------------
# One kill


@dataclass
class Trial:
    stage: str
    mode: str
    delay: float  # seconds after the child started
    exited_first: int | None  # exit code when the child ended before the kill
    on_disk: str  # what the killed run left, in words
    rerun_code: int
    problems: list[str]
    figures: dict[str, float]

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        seen = "exited first" if self.exited_first is not None else "killed"
        verdict = "ok" if self.ok else "FAIL: " + "; ".join(self.problems)
        return (
            f"{self.stage:<6} {self.mode:<5} delay {self.delay:5.2f} s ({seen}); "
            f"on disk: {self.on_disk}; rerun exit {self.rerun_code}; {verdict}"
        )


def kill_trial(ref: Reference, stage: str, mode: str, delay: float, log: Path) -> Trial:
    """Kill `stage` after `delay` seconds, check what it left, rerun it and compare."""
    ref.restore(before(stage))
    if mode == "over":  # a complete earlier result of this same stage, which the run replaces
        folder = FOLDER[stage]
        shutil.rmtree(ref.run_folder() / folder, ignore_errors=True)
        shutil.copytree(ref.run_folder(stage) / folder, ref.run_folder() / folder)
    command, rerun = COMMANDS[stage]
    with started(tunewright(command, ref.config), ref.env, log=log) as child:
        deadline = time.perf_counter() + delay
        while child.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.005)
        exited_first = child.poll()
        if exited_first is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    on_disk = describe(ref.run_folder(), FOLDER[stage])
    problems = [f"after the kill: {p}" for p in check_on_disk(ref)]
    rerun_code, output = run_captured(tunewright(rerun, ref.config), None, ref.env)
    figures: dict[str, float] = {}
    if rerun_code != 0:
        problems.append(f"rerun exited {rerun_code}: {output[-1500:]}")
    else:
        problems += [f"after the rerun: {p}" for p in check_on_disk(ref)]
        # The killed run's temporaries are removed by the rerun's writes of the same files.
        if left := sorted(str(p.relative_to(ref.run_folder())) for p in temporaries(ref)):
            problems.append(f"after the rerun: temporaries left behind: {left}")
        differences, figures = compare_results(ref, stage)
        problems += [p for p in differences if f"after the rerun: {p}" not in problems]
    return Trial(stage, mode, delay, exited_first, on_disk, rerun_code, problems, figures)


def temporaries(ref: Reference) -> list[Path]:
    """Hidden entries in the run folder: the atomic writers' temporaries."""
    return list(ref.run_folder().rglob(".*"))


def describe(run: Path, folder: str) -> str:
    """What a stage folder holds: manifest or not, visible entries, hidden temporaries,
    checkpoints with and without the completion mark."""
    from tunewright.training.callbacks import COMPLETE_MARK

    stage_dir = run / folder
    if not stage_dir.is_dir():
        return f"no {folder}/ folder"
    entries = sorted(p.name for p in stage_dir.iterdir())
    listed = ("manifest.json", "checkpoints")
    visible = [e for e in entries if not e.startswith(".") and e not in listed]
    words = ["manifest" if "manifest.json" in entries else "no manifest"]
    words.append("[" + ", ".join(visible) + "]")
    hidden = sum(e.startswith(".") for e in entries)
    if hidden:
        words.append(f"{hidden} temporary")
    checkpoints = sorted((stage_dir / "checkpoints").glob("checkpoint-*"))
    if checkpoints:
        marked = sum((c / COMPLETE_MARK).is_file() for c in checkpoints)
        words.append(f"checkpoints {marked} complete + {len(checkpoints) - marked} partial")
    return " ".join(words)


# ---------------------------------------------------------------------------------------------
# (a) Nothing looks complete that is not


def check_on_disk(ref: Reference) -> list[str]:
    """Problems with what is on disk in `work`'s run folder; see the module docstring."""
    run = ref.run_folder()
    if not run.is_dir():  # killed before it wrote anything
        return []
    problems = [p for path in trusted_files(run) if (p := file_problem(path))]
    for pattern in WEIGHT_FOLDERS:
        for folder in sorted(run.glob(pattern)):
            if problem := folder_problem(folder):
                problems.append(problem)
    problems += [p for c in marked_checkpoints(run) if (p := checkpoint_problem(c))]
    for stage_dir in sorted(p for p in run.iterdir() if p.is_dir()):
        problems += manifest_problems(stage_dir)
    # What a manifest vouches for must be the uninterrupted run's result, not a half of it.
    for artifact in claimed(run):
        problems += compare(ref, artifact)[0]
    return problems


def claimed(run: Path) -> list[str]:
    """The artifacts the manifests on disk vouch for, as the stages that read them decide:
    data, train, merged (the export manifest's merge record with its folder present) and each
    model-<dtype> the export manifest lists."""
    found = [stage for stage in ("data", "train") if (run / stage / "manifest.json").is_file()]
    path = run / "export" / "manifest.json"
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("merge") and (run / "export" / "merged").is_dir():
            found.append("merged")
        found += [name for name in manifest.get("outputs", []) if name.startswith("model-")]
    return found


def trusted_files(run: Path) -> list[Path]:
    """Every file a stage may read: hidden temporaries and unmarked checkpoints left out."""
    from tunewright.training.callbacks import COMPLETE_MARK

    files = []
    for path in sorted(run.rglob("*")):
        relative = path.relative_to(run).parts
        if not path.is_file() or any(part.startswith(".") for part in relative):
            continue
        checkpoint = next((p for p in path.parents if p.name.startswith("checkpoint-")), None)
        if checkpoint is not None and not (checkpoint / COMPLETE_MARK).is_file():
            continue
        files.append(path)
    return files


def file_problem(path: Path) -> str | None:
    """None when the file parses as its suffix says; else what is wrong with it."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".jsonl":
            read_jsonl(path)
        elif path.suffix in (".yaml", ".yml"):
            yaml.safe_load(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            load_file(path)
        elif path.suffix == ".png":
            data = path.read_bytes()
            whole = data.startswith(b"\x89PNG\r\n\x1a\n") and data[-8:-4] == b"IEND"
            if not whole:
                return f"{path}: not a whole PNG ({len(data)} bytes)"
    except Exception as exc:  # any failure to parse is the finding
        return f"{path}: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def folder_problem(folder: Path) -> str | None:
    """None when a weights folder loads as the next stage loads it: an adapter onto its base,
    a model with plain transformers, and its tokenizer."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():  # peft's deprecation notes, on every load
            warnings.simplefilter("ignore", FutureWarning)
            load_weights(folder)
        AutoTokenizer.from_pretrained(folder)
    except Exception as exc:
        return f"{folder}: does not load: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def load_weights(folder: Path) -> None:
    from transformers import AutoModelForCausalLM

    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        config = json.loads((folder / "adapter_config.json").read_text())
        base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
        PeftModel.from_pretrained(base, str(folder))
    else:
        AutoModelForCausalLM.from_pretrained(folder)


def marked_checkpoints(run: Path) -> list[Path]:
    from tunewright.training.callbacks import COMPLETE_MARK

    return sorted(c.parent for c in run.glob(f"train/checkpoints/checkpoint-*/{COMPLETE_MARK}"))


def checkpoint_problem(checkpoint: Path) -> str | None:
    """A checkpoint marked complete holds every file `--resume` loads, each loading."""
    import torch

    needed = ["adapter_model.safetensors", "trainer_state.json", "optimizer.pt", "scheduler.pt"]
    missing = [name for name in needed if not (checkpoint / name).is_file()]
    if missing:
        return f"{checkpoint}: marked complete but lacks {missing}"
    try:
        for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
            if (checkpoint / name).is_file():
                torch.load(checkpoint / name, weights_only=False)
    except Exception as exc:
        return f"{checkpoint}: marked complete but {type(exc).__name__}: {str(exc)[:200]}"
    return None


def manifest_problems(stage_dir: Path) -> list[str]:
    """A manifest's outputs all exist and its inputs still hash as recorded."""
    path = stage_dir / "manifest.json"
    if not path.is_file():
        return []
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [f"{path}: {exc}"]
    problems = [
        f"{path}: lists {name}, which is missing"
        for name in manifest.get("outputs", [])
        if not (stage_dir / name).exists()
    ]
    for input_path, digest in manifest.get("inputs", {}).items():
        if not Path(input_path).is_file() or sha256_file(Path(input_path)) != digest:
            problems.append(f"{path}: input {input_path} changed or missing")
    return problems


# ---------------------------------------------------------------------------------------------
# (c) The same outputs as the uninterrupted run


# The artifacts each stage's rerun must reproduce.
RESULTS = {
    "data": ["data"],
    "train": ["train"],
    "merge": ["merged"],
    "export": ["merged", "model-fp32"],
}


def compare_results(ref: Reference, stage: str) -> tuple[list[str], dict[str, float]]:
    """(c) for `stage`: every artifact it produces, against the uninterrupted run's."""
    problems: list[str] = []
    figures: dict[str, float] = {}
    for artifact in RESULTS[stage]:
        found, measured = compare(ref, artifact)
        problems += found
        figures.update(measured)
    return problems, figures


def compare(ref: Reference, artifact: str) -> tuple[list[str], dict[str, float]]:
    """Differences between `work`'s `artifact` (data, train, merged, model-<dtype>) and the
    uninterrupted run's, and the measured gaps (training: the largest adapter difference and
    the final-loss difference)."""
    got, expected = ref.run_folder(), ref.run_folder(STAGES[-1])
    if artifact == "data":
        names = ["train.jsonl", "eval.jsonl", "rejected.jsonl", "validation.json"]
        return same_bytes(got / "data", expected / "data", names), {}
    if artifact == "train":
        return compare_training(got / "train", expected / "train")
    folder = "export/" + artifact
    names = ["config.json", "generation_config.json", "tokenizer.json"]
    problems = same_bytes(got / folder, expected / folder, names)
    weights = "model.safetensors"
    problems += same_tensors(got / folder / weights, expected / folder / weights)
    return problems, {}


def same_bytes(got: Path, expected: Path, names: list[str]) -> list[str]:
    problems = []
    for name in names:
        if not (got / name).is_file():
            problems.append(f"{got / name} is missing")
        elif (got / name).read_bytes() != (expected / name).read_bytes():
            problems.append(f"{got / name} differs from the uninterrupted run's")
    return problems


def same_tensors(got: Path, expected: Path) -> list[str]:
    """The same tensor names, every tensor bitwise equal."""
    gap = tensor_gap(got, expected)
    if gap is None:
        return [f"{got}: missing, or its tensor names differ from the uninterrupted run's"]
    return [] if gap == 0.0 else [f"{got}: tensors differ by up to {gap:.3g}"]


def same_adapter_config(got: Path, expected: Path) -> list[str]:
    """adapter_config.json equal, but for the order of `target_modules` (PEFT keeps them in a
    set, so their order changes with the hash seed)."""
    name = "adapter_config.json"
    if not (got / name).is_file():
        return [f"{got / name} is missing"]
    mine, theirs = (json.loads((f / name).read_text()) for f in (got, expected))
    for config in (mine, theirs):
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
    return [] if mine == theirs else [f"{got / name} differs from the uninterrupted run's"]


def tensor_gap(got: Path, expected: Path) -> float | None:
    """The largest absolute difference between same-named tensors; None when the files are
    missing or hold different names."""
    from safetensors.torch import load_file

    if not got.is_file():
        return None
    a, b = load_file(got), load_file(expected)
    if a.keys() != b.keys():
        return None
    return max(((a[k].double() - b[k].double()).abs().max().item() for k in a), default=0.0)


def compare_training(got: Path, expected: Path) -> tuple[list[str], dict[str, float]]:
    weights = "adapter/adapter_model.safetensors"
    gap = tensor_gap(got / weights, expected / weights)
    problems = same_adapter_config(got / "adapter", expected / "adapter")
    if gap is None:
        return [*problems, f"{got / weights}: missing or different tensor names"], {}
    if gap > ADAPTER_ATOL:
        problems.append(f"adapter tensors differ by up to {gap:.3g} (allowed {ADAPTER_ATOL})")
    mine, theirs = (
        json.loads((folder / "manifest.json").read_text())["metrics"] for folder in (got, expected)
    )
    if mine["steps"] != theirs["steps"]:
        problems.append(f"trained {mine['steps']} steps, the uninterrupted run {theirs['steps']}")
    loss_gap = abs(mine["final_loss"] - theirs["final_loss"])
    if not math.isclose(mine["final_loss"], theirs["final_loss"], rel_tol=LOSS_RTOL):
        problems.append(f"final loss {mine['final_loss']} against {theirs['final_loss']}")
    return problems, {"adapter_gap": gap, "loss_gap": loss_gap}
