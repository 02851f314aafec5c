"""Every module and every command as the first thing a fresh process does.

In-process tests share one interpreter, so an import cycle that only bites when a module is
imported first (as `tunewright openai check FILE` once did) never shows there. These tests start
a new interpreter for each module and each cheap command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.support.projects import make_project

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tunewright"
MODULES = sorted(
    ".".join(("tunewright", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
        ".__init__"
    )
    for p in PACKAGE.rglob("*.py")
    if p.name != "__main__.py"
)


def fresh(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` in a new interpreter; output captured (drained) as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_module_imports_first(tmp_path):
    def first_import(module: str) -> tuple[str, int, str]:
        done = fresh("-c", f"import {module}", cwd=tmp_path)
        return module, done.returncode, done.stderr[-2000:]

    assert len(MODULES) > 50
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [r for r in pool.map(first_import, MODULES) if r[1] != 0]
    assert failures == [], "\n\n".join(f"{m}:\n{err}" for m, _, err in failures)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A small project on the tiny model: data file plus config, nothing trained."""
    folder = tmp_path_factory.mktemp("fresh-project")
    make_project(folder, model=tiny_model_dir, name="fresh", data={"max_seq_len": 64}, train=None)
    return folder


# (command line, text the output must hold); run in order: later commands use earlier outputs.
COMMANDS: list[tuple[tuple[str, ...], str]] = [
    (("--version",), "tunewright "),
    (("init", "starter.yaml"), "wrote starter.yaml"),
    (("validate", "config.yaml"), "ok config.yaml"),
    (("models", "list", "--json"), "smollm2-135m-instruct"),
    (("doctor", "--json"), '"versions"'),
    (("data", "inspect", "train.jsonl", "--rows", "1"), "alpaca"),
    (("data", "validate", "config.yaml"), "40 rows"),
    (("data", "prepare", "config.yaml"), "wrote"),
    (("data", "export", "config.yaml"), "train:"),
    (("data", "render", "config.yaml"), "tokens"),
    (("openai", "check", str(ROOT / "examples" / "openai" / "tickets.jsonl")), "tickets.jsonl"),
]
# Commands that need a trained model or a server: their help must still load their package.
HELP_ONLY = [
    "train",
    "plan",
    "eval",
    "run",
    "merge",
    "export",
    "serve",
    "monitor",
    "openai submit",
    "openai status",
    "ui",
]


def test_every_cheap_command_works_in_a_fresh_process(project: Path, tunewright_home: Path):
    env = {"TUNEWRIGHT_HOME": str(tunewright_home), "HF_HUB_OFFLINE": "1"}
    for args, expected in COMMANDS:
        done = fresh("-m", "tunewright", *args, cwd=project, env=env)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"tunewright {' '.join(args)}:\n{output[-3000:]}"
        assert expected in output, f"tunewright {' '.join(args)}:\n{output[-3000:]}"
        assert "Traceback" not in output
    assert (project / "runs" / "fresh" / "data" / "manifest.json").is_file()
    json.loads((project / "runs" / "fresh" / "data" / "validation.json").read_text())


@pytest.mark.parametrize("command", HELP_ONLY)
def test_commands_needing_a_model_answer_help_in_a_fresh_process(command: str, tmp_path: Path):
    done = fresh("-m", "tunewright", *command.split(), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Usage:" in done.stdout and "Traceback" not in done.stderr


def test_json_output_is_json_alone_when_libraries_print(project: Path, tunewright_home: Path):
    """transformers prints "[INFO] Running in WANDB offline mode" to stdout when it loads with
    WANDB_MODE=offline; `plan --json` must still print nothing but its JSON there."""
    env = {
        "TUNEWRIGHT_HOME": str(tunewright_home),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
    }
    done = fresh(
        "-m", "tunewright", "plan", "config.yaml", "--json", "--no-warmup", cwd=project, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WANDB offline" in done.stderr  # the library did print; it went to stderr
    assert "memory" in json.loads(done.stdout)
