"""Crash safety on the tiny model: one SIGKILL per stage, and a full disk.

Each stage is killed once at a point drawn from a seeded RNG - a share of its uninterrupted wall
time, so it may land before anything is written, mid-write or after the stage completed - and
must pass the checks of tests/support/crash.py whichever it hits: nothing on disk looks complete
that is not, the rerun (`train --resume` for training) exits 0, and its outputs equal the
uninterrupted run's. bench/crash_matrix.py runs the same checks over many kills.

A full disk (a file-size limit, RLIMIT_FSIZE, so writes fail with EFBIG) during `data prepare`
and `merge` is a user error naming the path being written, and leaves nothing a later stage
would trust.
"""

from __future__ import annotations

import random
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from tests.support.crash import (
    MODES,
    STAGES,
    Reference,
    build_reference,
    check_on_disk,
    compare_results,
    kill_trial,
    trusted_files,
    tunewright,
)
from tests.support.processes import run_captured

SEED = 20


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Reference:
    """Every stage run once uninterrupted (12 steps, a checkpoint every 3), timed."""
    return build_reference(tmp_path_factory.mktemp("crash"), tiny_model_dir, 12, save_every=3)


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_leaves_nothing_half_written_and_the_rerun_matches(reference, stage, tmp_path):
    delay = random.Random(f"{SEED}-{stage}").uniform(0.0, reference.seconds[stage])
    mode = MODES[STAGES.index(stage) % len(MODES)]  # data, merge fresh; train, export over
    trial = kill_trial(reference, stage, mode, delay, tmp_path / "killed.log")
    print(trial.line())  # where the kill landed, shown with -s
    assert trial.ok, trial.line()
    assert trial.rerun_code == 0


def test_resume_from_the_last_checkpoint_trains_no_extra_step(reference):
    """Killed after the checkpoint of the last step but before the result was saved: `--resume`
    starts at max_steps (12, not a whole number of 9-step epochs), where the HF loop alone
    would run a 13th step."""
    reference.restore("train")
    train = reference.run_folder() / "train"
    (train / "manifest.json").unlink()
    shutil.rmtree(train / "adapter")
    command = tunewright(["train", "CONFIG", "--resume"], reference.config)
    code, output = run_captured(command, None, reference.env)
    assert code == 0, output[-3000:]
    assert check_on_disk(reference) == []
    problems, figures = compare_results(reference, "train")
    assert problems == [] and figures["adapter_gap"] == 0.0


# ---------------------------------------------------------------------------------------------
# Full disk


def run_with_file_limit(ref: Reference, args: list[str], limit: int) -> tuple[int, str]:
    """`tunewright ARGS` on the reference project, every file it writes limited to `limit`
    bytes; (exit code, stdout + stderr)."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    child = subprocess.run(
        tunewright(args, ref.config), env=ref.env, preexec_fn=limit_file_size, capture_output=True
    )
    return child.returncode, (child.stdout + child.stderr).decode(errors="replace")


def assert_out_of_room(code: int, output: str, written: Path) -> None:
    assert code == 1, output[-3000:]
    assert f"error: file size limit reached writing {written}" in output, output[-3000:]
    assert "Traceback" not in output


def assert_nothing_trusted(ref: Reference, folder: Path) -> None:
    """No manifest and no temporary left behind; whatever else is there is whole (the checks
    of a kill trial)."""
    assert not (folder / "manifest.json").exists()
    assert not list(folder.rglob(".*")), "temporary files left behind"
    assert check_on_disk(ref) == []


def test_full_disk_during_data_prepare_is_a_user_error(reference):
    """Over a complete earlier result: validation.json (about 2.7 kB) cannot be written under a
    1 kB limit; the old file stays whole, but the stage no longer vouches for it."""
    reference.restore("data")
    data = reference.run_folder() / "data"
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.name != "manifest.json"}
    code, output = run_with_file_limit(reference, ["data", "prepare", "CONFIG"], 1024)
    assert_out_of_room(code, output, data / "validation.json")
    assert_nothing_trusted(reference, data)
    assert (data / "validation.json").read_bytes() == before["validation.json"]
    assert all(p.name in before for p in trusted_files(data))


def test_full_disk_during_merge_is_a_user_error_and_a_rerun_recovers(reference):
    """The merged weights (about 400 kB) do not fit a 100 kB limit: no merged folder, no
    manifest; once there is room again, merge completes."""
    reference.restore("train")
    export = reference.run_folder() / "export"
    code, output = run_with_file_limit(reference, ["merge", "CONFIG"], 100_000)
    assert_out_of_room(code, output, export / "merged")
    assert_nothing_trusted(reference, export)
    assert not (export / "merged").exists()
    code, output = run_captured(
        tunewright(["merge", "CONFIG"], reference.config), None, reference.env
    )
    assert code == 0, output[-3000:]
    assert check_on_disk(reference) == []
    assert compare_results(reference, "merge") == ([], {})
