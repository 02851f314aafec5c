"""The training guards on synthetic Trainer events."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from tunewright.files import read_jsonl
from tunewright.training.callbacks import (
    COMPLETE_MARK,
    DivergenceGuard,
    LoopClock,
    MetricsLogCallback,
    OverfitWarning,
    ProgressCallback,
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


def test_loop_clock_leaves_out_evaluation_and_saving(tmp_path):
    """Two steps with an evaluation and a checkpoint between them, on a scripted timer: the
    loop's seconds exclude both, and the progress bar and metrics.jsonl show the clock's speed."""
    now, seen = [0.0], [0]
    clock = LoopClock(lambda: seen[0], timer=lambda: now[0])
    bar = ProgressCallback(clock, Console(quiet=True))
    log = MetricsLogCallback(tmp_path / "metrics.jsonl", clock)
    state = SimpleNamespace(global_step=0, max_steps=2, epoch=0.0, is_world_process_zero=True)

    def event(name: str, at: float, **kwargs: object) -> None:
        now[0] = at
        for callback in (clock, bar, log):  # the order stage.py adds them in
            getattr(callback, name)(None, state, control(), **kwargs)

    event("on_train_begin", 0.0)
    state.global_step, seen[0] = 1, 100
    event("on_step_end", 2.0)
    event("on_log", 2.5, logs={"loss": 1.5})
    event("on_log", 5.0, logs={"eval_loss": 1.4})  # logged at the end of the evaluation
    event("on_evaluate", 5.5, metrics={"eval_loss": 1.4})  # evaluation: 2.5 -> 5.5
    event("on_save", 6.5)  # checkpoint: 5.5 -> 6.5
    state.global_step, seen[0] = 2, 300
    event("on_step_end", 8.5)
    event("on_log", 8.5, logs={"loss": 1.2})
    event("on_train_end", 9.0)
    event("on_evaluate", 12.0, metrics={"eval_loss": 1.3})  # after training: not the loop's

    assert (clock.eval_seconds, clock.save_seconds) == (3.0, 1.0)
    assert clock.loop_seconds == 8.5 - 3.0 - 1.0
    assert clock.tokens == 300 and clock.tokens_per_s == round(300 / 4.5, 2)
    assert bar.speed == clock.tokens_per_s
    entries = read_jsonl(tmp_path / "metrics.jsonl")
    assert [e["tokens_per_s"] for e in entries] == [50.0, 50.0, clock.tokens_per_s]
