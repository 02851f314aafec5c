import hashlib
import json

import pytest

from tunewright import runs
from tunewright.config import load_config
from tunewright.runs import MANIFEST, read_manifest, stage_run


def test_stage_manifest_records_config_inputs_and_outputs(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "hi"}\n')
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "name: exp1\nseed: 7\ndata:\n  train: train.jsonl\nserve:\n  api_keys: [sk-hidden]\n"
    )
    config = load_config(config_file)
    with stage_run(config, "data", inputs=[data]) as run:
        (run.output("train.jsonl")).write_text("x\n")
    manifest = read_manifest(tmp_path / "runs" / "exp1" / "data")
    assert manifest is not None
    assert manifest["stage"] == "data"
    assert manifest["seed"] == 7
    assert manifest["outputs"] == ["train.jsonl"]
    assert manifest["inputs"] == {str(data): hashlib.sha256(data.read_bytes()).hexdigest()}
    assert manifest["config"]["data"]["train"] == ["train.jsonl"]
    assert manifest["libraries"]["transformers"]
    assert manifest["wall_seconds"] >= 0
    saved = (tmp_path / "runs" / "exp1" / "config.yaml").read_text()
    assert "sk-hidden" not in saved and "sk-hidden" not in json.dumps(manifest)


def test_crashed_stage_has_no_manifest(tmp_path):
    config = load_config(None, [f"runs_dir={tmp_path}"])
    with stage_run(config, "train"):
        pass
    assert read_manifest(tmp_path / "default" / "train") is not None
    with pytest.raises(KeyboardInterrupt), stage_run(config, "train"):
        raise KeyboardInterrupt
    assert not (tmp_path / "default" / "train" / MANIFEST).exists()
    assert read_manifest(tmp_path / "default" / "train") is None


# ---------------------------------------------------------------------------------------------
# The layout


def _trained(config, *folders: str, listed: tuple[str, ...] | None = None, unlisted=False):
    """A completed train stage holding `folders`; its manifest lists `listed` (default: all of
    them), or has no `outputs` key at all when `unlisted`."""
    with stage_run(config, runs.TRAIN) as run:
        for name in folders:
            (run.dir / name).mkdir(exist_ok=True)
        for name in folders if listed is None else listed:
            run.output(name)
    if unlisted:
        manifest = read_manifest(run.dir)
        del manifest["outputs"]
        (run.dir / MANIFEST).write_text(json.dumps(manifest))


def test_layout_paths_from_config_or_run_folder(tmp_path):
    config = load_config(None, [f"runs_dir={tmp_path}"])
    run = tmp_path / "default"
    for where in (config, run):
        assert runs.run_folder(where) == run
        assert runs.stage_dir(where, runs.OPENAI) == run / "openai"
        assert runs.resolved_config(where) == run / "config.yaml"
        assert runs.data_split(where, "eval") == run / "data" / "eval.jsonl"
        assert runs.validation_report(where) == run / "data" / "validation.json"
        assert runs.data_export_dir(where) == run / "data" / "export"
        assert runs.loss_plot(where) == run / "train" / "loss.png"
        assert runs.eval_metrics(where) == run / "eval" / "metrics.json"
        assert runs.eval_report(where) == run / "eval" / "report.html"
        assert runs.merged_dir(where) == run / "export" / "merged"
        assert runs.request_log(where) == run / "serve" / "requests.jsonl"
    assert runs.run_of_request_log(runs.request_log(config)) == run
    assert runs.run_of_adapter(run / "train" / "adapter") == run
    assert runs.run_of_adapter(run / "train" / "model") is None
    assert runs.run_of_adapter(tmp_path / "adapter") is None


def test_trained_output_of_an_adapter_run_and_a_full_run(tmp_path):
    config = load_config(None, [f"runs_dir={tmp_path}"])
    _trained(config, "adapter")
    assert runs.trained_output(config) == tmp_path / "default" / "train" / "adapter"
    _trained(config, "model")  # a rerun as full fine-tuning, over the old adapter folder
    assert runs.trained_output(config) == tmp_path / "default" / "train" / "model"
    assert runs.trained_output(tmp_path / "default") == tmp_path / "default" / "train" / "model"


def test_trained_output_needs_a_manifest(tmp_path):
    config = load_config(None, [f"runs_dir={tmp_path}"])
    assert runs.trained_output(config) is None  # no run folder at all
    (tmp_path / "default" / "train" / "adapter").mkdir(parents=True)
    assert runs.trained_output(config) is None  # the stage crashed or is still running
    _trained(config, "adapter")
    (tmp_path / "default" / "train" / MANIFEST).unlink()
    assert runs.trained_output(config) is None


def test_trained_output_needs_the_folder_and_its_listing(tmp_path):
    def config(name):
        return load_config(None, [f"runs_dir={tmp_path}", f"name={name}"])

    _trained(config("gone"), listed=("adapter",))  # listed, but the folder is missing
    assert runs.trained_output(config("gone")) is None
    _trained(config("stale"), "adapter", listed=("loss.png",))  # there, but not this run's
    assert runs.trained_output(config("stale")) is None
    _trained(config("older"), "model", unlisted=True)  # no `outputs` key: the folder decides
    assert runs.trained_output(config("older")) == tmp_path / "older" / "train" / "model"
