"""The training guards on synthetic Trainer events."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from tunewright.training.callbacks import (
    COMPLETE_MARK,
    DivergenceGuard,
    OverfitWarning,
    last_complete_checkpoint,
)


def control() -> SimpleNamespace:
    return SimpleNamespace(should_training_stop=False, should_save=True, should_evaluate=True)


def test_overfitting_warning_needs_eval_rising_while_train_falls():
    warn = OverfitWarning(Console(quiet=True))
    state = SimpleNamespace(global_step=0)
    for step, (train, evals) in enumerate([(2.0, 1.5), (1.5, 1.6), (1.0, 1.7)], start=1):
        state.global_step = step
        warn.on_log(None, state, control(), logs={"loss": train})
        warn.on_evaluate(None, state, control(), metrics={"eval_loss": evals})
    assert warn.warning is not None and "eval loss rose 1.5000 -> 1.7000" in warn.warning

    calm = OverfitWarning(Console(quiet=True))
    for train, evals in [(2.0, 1.5), (1.5, 1.4), (1.0, 1.3), (0.8, 1.35)]:
        calm.on_log(None, state, control(), logs={"loss": train})
        calm.on_evaluate(None, state, control(), metrics={"eval_loss": evals})
    assert calm.warning is None


def test_divergence_guard_stops_without_saving():
    guard = DivergenceGuard()
    state = SimpleNamespace(global_step=7)
    ok = control()
    guard.on_log(None, state, ok, logs={"loss": 1.25})
    assert guard.diverged_at is None and not ok.should_training_stop
    bad = control()
    guard.on_log(None, state, bad, logs={"loss": float("nan")})
    assert guard.diverged_at == 7
    assert bad.should_training_stop and not bad.should_save and not bad.should_evaluate


def test_last_complete_checkpoint_ignores_unmarked(tmp_path):
    for step in (10, 20, 30):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-10" / COMPLETE_MARK).write_text("{}")
    (tmp_path / "checkpoint-20" / COMPLETE_MARK).write_text("{}")
    # checkpoint-30 was being written when the process died
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-20"
    assert last_complete_checkpoint(tmp_path / "none") is None
