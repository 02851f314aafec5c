"""SIGKILL every stage at random points and check that nothing half-written looks complete.

    python bench/crash_matrix.py [--kills 20] [--seed 0] [--steps 150] [--workdir DIR]

On a tiny random-initialised Llama (tests/conftest.py's builder) and a 40-row LoRA project, runs
`data prepare`, `train`, `merge` and `export` once uninterrupted, timing each. Then kill i (of
--kills) takes stage i mod 4, starts it from the project as it stood before that stage - with no
earlier result of the stage ("fresh") or over a complete one ("over"), alternately - and
SIGKILLs it after a delay drawn uniformly between 0 and that stage's uninterrupted time. Each
kill is checked as tests/support/crash.py describes: (a) no artifact looks complete that is not,
(b) the rerun (`train --resume` for training) exits 0, (c) the rerun's outputs equal the
uninterrupted run's (bitwise for data, merge and export; adapter within 1e-5 and final loss
within 1e-4 relative for training). One line per kill, a per-stage summary, then
`crash matrix: K kills, F failures`; exit status 1 when any kill failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# Run as `python bench/crash_matrix.py`: the repository root holds the shared checks (tests/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import build_tiny_llama
from tests.support.crash import MODES, STAGES, Trial, build_reference, kill_trial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills in all, spread over stages")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument(
        "--steps", type=int, default=150, help="training steps, a checkpoint every 5"
    )
    parser.add_argument("--workdir", type=Path, help="keep the projects here (default: a temp dir)")
    args = parser.parse_args()

    root = args.workdir or Path(tempfile.mkdtemp(prefix="tw-crash-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ref = build_reference(root, build_tiny_llama(root / "model"), args.steps, save_every=5)
    print("uninterrupted: " + ", ".join(f"{s} {ref.seconds[s]:.2f} s" for s in STAGES))

    rng = random.Random(args.seed)
    trials: list[Trial] = []
    for i in range(args.kills):
        stage = STAGES[i % len(STAGES)]
        mode = MODES[(i // len(STAGES)) % len(MODES)]
        delay = rng.uniform(0.0, ref.seconds[stage])
        trial = kill_trial(ref, stage, mode, delay, root / f"kill-{i}.log")
        trials.append(trial)
        print(f"kill {i + 1:>2}/{args.kills} {trial.line()}", flush=True)

    print_summary(trials)
    failures = sum(not t.ok for t in trials)
    print(f"wall time: {time.perf_counter() - started:.0f} s; projects and logs in {root}")
    print(f"crash matrix: {len(trials)} kills, {failures} failures")
    return 1 if failures else 0


def print_summary(trials: list[Trial]) -> None:
    """Per stage: kills, how many ended before their kill, how many left a manifest, failures;
    for training also the largest adapter and final-loss gaps against the uninterrupted run."""
    by_stage: dict[str, list[Trial]] = defaultdict(list)
    for trial in trials:
        by_stage[trial.stage].append(trial)
    for stage, group in by_stage.items():
        first = sum(t.exited_first is not None for t in group)
        manifest = sum(t.on_disk.startswith("manifest") for t in group)
        line = (
            f"{stage}: {len(group)} kills ({first} ended first, {manifest} left a manifest), "
            f"{sum(not t.ok for t in group)} failures"
        )
        gaps = [t.figures for t in group if t.figures]
        if gaps:
            line += (
                f"; largest adapter gap {max(g['adapter_gap'] for g in gaps):.2g}, "
                f"final-loss gap {max(g['loss_gap'] for g in gaps):.2g}"
            )
        print(line)


if __name__ == "__main__":
    sys.exit(main())
