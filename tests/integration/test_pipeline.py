"""`tunewright run`: every stage once, then nothing when nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.runs import is_up_to_date


def project(folder: Path, model: Path, merge: bool) -> Path:
    rows = [
        {"instruction": f"Question {i}: name a colour.", "output": "The answer is blue."}
        for i in range(40)
    ]
    return make_project(
        folder,
        model=model,
        rows=rows,
        name="pipe",
        data={"min_words": 1},
        train={"max_steps": 6, "batch_size": 8, "grad_accum": 1, "learning_rate": 0.003},
        eval={"max_new_tokens": 8, "bootstrap_samples": 200, "suites": []},
        export={"merge": merge},
    )


def stamps(run_dir: Path, *stage_names: str) -> dict[Path, int]:
    """Modification time of every file in the stages' folders: unchanged when nothing ran."""
    return {
        path: path.stat().st_mtime_ns
        for name in stage_names
        for path in (run_dir / name).rglob("*")
        if path.is_file()
    }


def stages(out: str) -> dict[str, str]:
    lines = [
        line.removeprefix("stage ").split(": ", 1)
        for line in out.splitlines()
        if line.startswith("stage ")
    ]
    return dict(lines)


def test_run_then_rerun_skips_everything(tmp_path, tiny_model_dir, run_cli):
    config = project(tmp_path, tiny_model_dir, merge=False)
    code, out, err = run_cli("run", str(config))
    assert code == 0, err
    status = stages(out)
    assert status["data"].startswith("ran") and status["train"].startswith("ran")
    assert status["eval"].startswith("ran")
    assert status["export"] == "skipped (export.merge is false)"
    assert "verdict (exact_match)" in out and "serve it: tunewright serve" in out
    # 4 held-out examples can only show a very large change: the summary says so
    assert "diagnosis: Too little eval data: with 4 examples" in " ".join(out.split())
    run_dir = tmp_path / "runs" / "pipe"
    assert (run_dir / "eval" / "report.html").is_file()

    before = stamps(run_dir, "data", "train", "eval")
    code, out, err = run_cli("run", str(config))
    assert code == 0, err
    status = stages(out)
    assert all(status[s] == "skipped (up to date)" for s in ("data", "train", "eval"))
    assert stamps(run_dir, "data", "train", "eval") == before  # no stage wrote anything

    code, out, err = run_cli("run", str(config), "--force", "eval")
    status = stages(out)
    assert code == 0 and status["eval"].startswith("ran") and status["train"].startswith("skip")


def test_changes_rerun_only_what_depends_on_them(tmp_path, tiny_model_dir, run_cli):
    config_path = project(tmp_path, tiny_model_dir, merge=False)
    assert run_cli("run", str(config_path))[0] == 0
    config = load_config(config_path, ["eval.max_new_tokens=6"])
    assert is_up_to_date(config, "data") and is_up_to_date(config, "train")
    assert not is_up_to_date(config, "eval")
    data = tmp_path / "train.jsonl"
    data.write_text(
        data.read_text()
        + json.dumps({"instruction": "Extra question here.", "output": "The answer is blue."})
        + "\n"
    )
    assert not is_up_to_date(config, "data")
    code, out, err = run_cli("run", str(config_path))
    assert code == 0, err
    status = stages(out)
    assert all(status[s].startswith("ran") for s in ("data", "train", "eval"))


def test_unknown_force_stage_is_a_user_error(tmp_path, tiny_model_dir, run_cli):
    code, _, err = run_cli("run", str(project(tmp_path, tiny_model_dir, False)), "--force", "x")
    assert code == 1 and "unknown stage" in err


def test_run_merges_lora_and_rerun_skips_the_merge(tmp_path, tiny_model_dir, run_cli):
    config = project(tmp_path, tiny_model_dir, merge=True)
    code, out, err = run_cli("run", str(config))
    assert code == 0, err
    assert stages(out)["export"].startswith("ran")
    merged = tmp_path / "runs" / "pipe" / "export" / "merged"
    assert (merged / "model.safetensors").is_file()
    assert f"serve it: tunewright serve --model {merged}" in out
    code, out, err = run_cli("run", str(config))
    assert code == 0, err
    assert set(stages(out).values()) == {"skipped (up to date)"}
