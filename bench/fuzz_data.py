"""Fuzz the data stage with malformed inputs of every format; none may crash it.

    python bench/fuzz_data.py [--cases 10000] [--seed 0] [--crashes runs/fuzz-crashes]
    python bench/fuzz_data.py --replay runs/fuzz-crashes/0001-jsonl

Cases come from tests/support/fuzz_data.py, the generators and the check the CI test uses,
spread evenly over the formats (JSONL, JSON, CSV, TSV, Parquet, folders, save_to_disk datasets).
A case crashes when the data stage raises anything but a TunewrightError, gives an error that
names no input file, or loses count of a row. Prints one line per format (cases, how the stage
ended, crashes, seconds), a `crash kind:` line per exception and place, the first few crashes,
then `fuzz: N cases, C crashes`; exits 1 on any crash. The first 100 crashing inputs are saved
under --crashes; --replay runs the check on one again.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from hypothesis import HealthCheck, Phase, given, seed, settings
from tests.conftest import build_tiny_llama  # also keeps the HF libraries offline
from tests.support.fuzz_data import CASES, Case, Outcome, check_case, replay, save_case

from tunewright.models import load_tokenizer

SHOWN = 5  # crashing cases printed in full
SAVED = 100  # crashing cases kept under --crashes


@dataclass
class Tally:
    """Outcomes so far: counts per format and result, crash kinds, reports of saved crashes."""

    crashes: Path
    counts: dict[str, Counter] = field(default_factory=dict)
    kinds: Counter = field(default_factory=Counter)
    reports: list[str] = field(default_factory=list)

    def add(self, fmt: str, case: Case, outcome: Outcome) -> None:
        counts = self.counts.setdefault(fmt, Counter())
        counts[outcome.result if outcome.problem is None else "crash"] += 1
        if outcome.problem is None:
            return
        self.kinds[crash_kind(outcome.problem)] += 1
        if sum(self.kinds.values()) <= SAVED:
            saved = self.crashes / f"{sum(self.kinds.values()):04d}-{fmt}"
            save_case(case, outcome, saved)
            self.reports.append(f"{saved}: {outcome.result}: {outcome.problem}")


def crash_kind(problem: str) -> str:
    """The exception type and our function that raised it, or the broken promise."""
    if not problem.startswith("traceback:"):
        return re.sub(r"[0-9]+", "N", problem.split(":")[0])
    lines = problem.splitlines()
    last_frame = max(i for i, line in enumerate(lines) if line.startswith('  File "'))
    exception = next(line for line in lines[last_frame:] if not line.startswith(" "))
    ours = re.findall(r'File "[^"]*/(tunewright/[^"]+)", line [0-9]+, in (\w+)', problem)
    where = f" in {ours[-1][0]}:{ours[-1][1]}" if ours else ""
    return exception.split(":")[0] + where


def fuzz_format(fmt: str, cases: int, seed_: int, work: Path, model: Path, tokenizer, tally: Tally):
    """Run `cases` cases of one format into `tally`."""

    @seed(seed_)
    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # a crash is saved as drawn, not shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(case=CASES[fmt])
    def run(case: Case) -> None:
        folder = work / f"{fmt}-{sum(tally.counts.get(fmt, {}).values())}"
        tally.add(fmt, case, check_case(case, folder, model, tokenizer))
        shutil.rmtree(folder, ignore_errors=True)

    run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crashes", type=Path, default=Path("runs/fuzz-crashes"))
    parser.add_argument("--replay", type=Path, help="A saved crash folder to run again.")
    args = parser.parse_args()

    from datasets import disable_progress_bars

    disable_progress_bars()  # one per saved dataset written
    with tempfile.TemporaryDirectory(prefix="tw-fuzz-") as tmp:
        work = Path(tmp)
        model = build_tiny_llama(work / "tiny-llama")
        tokenizer = load_tokenizer(model)
        if args.replay:
            outcome = replay(args.replay, work / "replay", model, tokenizer)
            print(f"{outcome.result}: {outcome.problem or outcome.message}")
            return 1 if outcome.problem else 0
        tally = Tally(args.crashes)
        for n, fmt in enumerate(CASES):
            # An even share per format (the first take the remainder), and a seed per format:
            # CSV and TSV would otherwise draw the same cases.
            share = args.cases // len(CASES) + (n < args.cases % len(CASES))
            start = time.perf_counter()
            fuzz_format(fmt, share, args.seed * 100 + n, work, model, tokenizer, tally)
            counts = tally.counts.get(fmt, Counter())
            ended = ", ".join(f"{counts[k]} {k}" for k in ("prepared", "gated", "refused"))
            print(
                f"{fmt}: {sum(counts.values())} cases ({ended}), {counts['crash']} crashes, "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
    for kind, count in tally.kinds.most_common():
        print(f"crash kind: {count} x {kind}")
    for report in tally.reports[:SHOWN]:
        print(f"\ncrash {report}")
    cases = sum(sum(c.values()) for c in tally.counts.values())
    crashes = sum(tally.kinds.values())
    print(f"fuzz: {cases} cases, {crashes} crashes")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
