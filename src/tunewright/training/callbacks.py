"""Trainer callbacks: the training-loop clock, progress display, metrics log, divergence guard,
overfitting warning and checkpoint completion marks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

from tunewright.files import append_jsonl, atomic_write_json

COMPLETE_MARK = "tunewright-complete.json"


class LoopClock(TrainerCallback):
    """Seconds and non-padding tokens of the training loop alone: the evaluations and checkpoint
    saves inside `trainer.train()` are timed apart and left out. Its `tokens_per_s` is the one
    speed the progress bar, metrics.jsonl and the manifest show.

    The Trainer evaluates and then saves after a step's `on_step_end` (after `on_epoch_end` at
    an epoch's end), and reports each when done (`on_evaluate`, `on_save`), so each takes the
    time from the last of those marks. Everything else between two steps (logging, trackers,
    loading the next batches) is the loop's. Add it before the callbacks that read it."""

    def __init__(
        self, tokens_seen: Callable[[], int], timer: Callable[[], float] = time.perf_counter
    ) -> None:
        self.tokens_seen = tokens_seen
        self.timer = timer
        self.running = False
        self.start = self.mark = 0.0
        self.start_tokens = 0
        self.loop_seconds = self.eval_seconds = self.save_seconds = 0.0
        self.tokens = 0  # non-padding input tokens trained on since training (re)started

    @property
    def tokens_per_s(self) -> float | None:
        return round(self.tokens / self.loop_seconds, 2) if self.loop_seconds > 0 else None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.running = True
        self.start = self.mark = self.timer()
        self.start_tokens = self.tokens_seen()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.mark = self.timer()
        self.loop_seconds = self.mark - self.start - self.eval_seconds - self.save_seconds
        self.tokens = self.tokens_seen() - self.start_tokens

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.mark = self.timer()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:  # the step's own log; eval results are logged mid-eval
            self.mark = self.timer()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.running:
            self.eval_seconds += self._since_mark()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.running:
            self.save_seconds += self._since_mark()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.running = False

    def _since_mark(self) -> float:
        now = self.timer()
        seconds, self.mark = now - self.mark, now
        return seconds


class ProgressCallback(TrainerCallback):
    """One progress bar: step, loss, training-loop tokens/s (`LoopClock`) and ETA."""

    def __init__(self, clock: LoopClock, console: Console | None = None) -> None:
        self.clock = clock
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task: Any = None
        self.start = 0.0
        self.loss = float("nan")
        self.speed = 0.0  # the clock's tokens/s, as of the last step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("train"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, loss="-", speed="-"
        )
        self.start = time.perf_counter()
        self.progress.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is None:
            return
        self.speed = self.clock.tokens_per_s or 0.0
        self.progress.update(self.task, completed=state.global_step, speed=f"{self.speed:.0f}")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        # The step's loss is logged after on_step_end, so the loss is shown from here.
        if self.progress is None or not logs or "loss" not in logs:
            return
        self.loss = float(logs["loss"])
        self.progress.update(self.task, loss=f"{self.loss:.4f}")
        # Logs and CI have no live bar: print a plain line every tenth of the run instead.
        every = max(1, state.max_steps // 10)
        if not self.console.is_terminal and state.global_step % every == 0:
            done = state.global_step / max(state.max_steps, 1)
            elapsed = time.perf_counter() - self.start
            eta = elapsed / done * (1 - done) if done else 0.0
            self.console.print(
                f"step {state.global_step}/{state.max_steps}: loss {self.loss:.4f}, "
                f"{self.speed:.0f} tokens/s, eta {eta:.0f} s"
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class MetricsLogCallback(TrainerCallback):
    """Appends every log entry (train loss, eval loss, lr, training-loop tokens/s) to
    metrics.jsonl."""

    def __init__(self, path: Path, clock: LoopClock) -> None:
        self.path = path
        self.clock = clock

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        entry = {
            "step": state.global_step,
            "epoch": state.epoch,
            **logs,
            "tokens_seen": self.clock.tokens_seen(),
            "tokens_per_s": self.clock.tokens_per_s,
        }
        append_jsonl(self.path, [entry], default=_plain)


def _plain(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") else str(value)


class DivergenceGuard(TrainerCallback):
    """Stops at the first NaN/inf loss, without saving the broken weights."""

    def __init__(self) -> None:
        self.diverged_at: int | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = state.global_step
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False


class OverfitWarning(TrainerCallback):
    """Warns once when eval loss rose at two evaluations in a row while train loss fell."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.train_losses: list[float] = []
        self.points: list[tuple[float, float]] = []  # (train loss, eval loss) at each eval
        self.warning: str | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.train_losses.append(float(logs["loss"]))

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        if not metrics or "eval_loss" not in metrics or not self.train_losses:
            return
        recent = self.train_losses[-5:]
        self.points.append((sum(recent) / len(recent), float(metrics["eval_loss"])))
        if self.warning is None and len(self.points) >= 3:
            (t0, e0), (t1, e1), (t2, e2) = self.points[-3:]
            if e2 > e1 > e0 and t2 < t1 < t0:
                self.warning = (
                    f"possible overfitting at step {state.global_step}: eval loss "
                    f"rose {e0:.4f} -> {e2:.4f} while train loss fell "
                    f"{t0:.4f} -> {t2:.4f}"
                )
                self.console.print(f"[yellow]warning:[/yellow] {self.warning}")


class CheckpointMark(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has finished writing it, so `--resume`
    never picks one that was being written when the process died.

    With several processes each writes its own part (its RNG state; its shard under FSDP), so
    rank 0 marks only after all of them are done."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        _wait_for_all_processes()
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            atomic_write_json(
                folder / COMPLETE_MARK, {"step": state.global_step, "epoch": state.epoch}
            )


def _wait_for_all_processes() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that carries the completion mark."""
    marked = [p for p in folder.glob("checkpoint-*") if (p / COMPLETE_MARK).is_file()]
    return max(marked, key=lambda p: int(p.name.split("-")[1]), default=None)
