"""Run `tunewright data prepare` end to end on generated alpaca rows with planted problems, and
print rows/s, peak memory and the recall of the planted duplicates.

    python bench/data_validate.py [--rows 1000000] [--seed 0] [--keep DIR]

The rows are written as JSON lines to a temporary project (varied instructions and answers over
a 20,000-word Zipf-like vocabulary, 30-60 words each). Planted among them, at known lines:
0.5% exact duplicates, 0.5% near-duplicates (one word of the answer changed, mid-text or at the
end), 0.1% empty answers and 0.05% lines that are not JSON. The command runs in a child process,
so its peak RSS (`ru_maxrss` of the child) covers everything `data prepare` holds, import
included; the time is the child's wall time. Recall is read back from what the run wrote:
`rejected.jsonl` for exact duplicates, empty answers and broken lines, `findings.jsonl` for the
near-duplicate warnings. Two small side sets then measure the near-duplicate check's
sensitivity (one word changed mid-text in 40-word texts) and false alarms between template
siblings. One `key: value` per line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from tunewright.data.checks import check_records
from tunewright.data.records import make_record

VERBS = ["Explain", "Describe", "Summarize", "List", "Compare", "Write", "Give", "Suggest"]
SYLLABLES = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "de", "pa", "zu", "qe", "ho", "bi"]


def make_vocabulary(rng: np.random.Generator, size: int = 20_000) -> list[str]:
    """Distinct pseudo-words of 2-4 syllables."""
    words: dict[str, None] = {}
    while len(words) < size:
        count = int(rng.integers(2, 5))
        words["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), count))] = None
    return list(words)


def write_rows(path: Path, rows: int, seed: int) -> dict[str, set[int]]:
    """Write `rows` lines to `path`; returns the planted lines by kind (1-based line numbers)."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(make_vocabulary(rng), dtype=object)
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)  # p ~ 1/rank, as in natural text
    weights /= weights.sum()
    planted: dict[str, set[int]] = {"exact": set(), "near": set(), "empty": set(), "broken": set()}
    share = {"exact": 0.005, "near": 0.005, "empty": 0.001, "broken": 0.0005}
    kinds = rng.random(rows)
    bounds = np.cumsum(list(share.values()))
    originals: list[dict[str, str]] = []  # a sample of earlier rows to copy from
    chunk = 50_000
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, rows, chunk):
            size = min(chunk, rows - start)
            lengths = rng.integers(8, 20, size), rng.integers(22, 42, size)
            draws = rng.choice(len(vocabulary), int(sum(lengths[0]) + sum(lengths[1])), p=weights)
            words = vocabulary[draws]
            cursor = 0
            lines = []
            for k in range(size):
                line = start + k + 1
                prompt_len, answer_len = int(lengths[0][k]), int(lengths[1][k])
                prompt = words[cursor : cursor + prompt_len]
                answer = words[cursor + prompt_len : cursor + prompt_len + answer_len]
                cursor += prompt_len + answer_len
                row = {
                    "instruction": f"{VERBS[line % len(VERBS)]} {' '.join(prompt)}.",
                    "input": "",
                    "output": " ".join(answer).capitalize() + ".",
                }
                kind = int(np.searchsorted(bounds, kinds[start + k], side="right"))
                if kind < len(bounds) and (kind >= 2 or originals):
                    name = list(share)[kind]
                    planted[name].add(line)
                    if name == "exact":
                        row = dict(originals[int(rng.integers(len(originals)))])
                    elif name == "near":
                        row = dict(originals[int(rng.integers(len(originals)))])
                        answer_words = row["output"].split(" ")
                        at = int(rng.integers(len(answer_words) // 2, len(answer_words)))
                        answer_words[at] = f"changed{line}"
                        row["output"] = " ".join(answer_words)
                    elif name == "empty":
                        row["output"] = ""
                    else:
                        lines.append('{"instruction": "cut off here\n')
                        continue
                elif len(originals) < 100_000 and rng.random() < 0.2:
                    originals.append(row)
                lines.append(json.dumps(row) + "\n")
            out.write("".join(lines))
    return planted


def mid_text_edit_recall(seed: int, pairs: int = 1000) -> float:
    """Share of 40-word answers found again with one word changed in the middle."""
    rng = np.random.default_rng(seed)
    vocabulary = make_vocabulary(rng, 2000)
    records = []
    for n in range(pairs):
        words = [vocabulary[i] for i in rng.integers(0, len(vocabulary), 40)]
        for answer in (words, [*words[:20], f"edit{n}", *words[21:]]):
            messages = [{"role": "user", "content": "Describe it."}]
            messages.append({"role": "assistant", "content": " ".join(answer)})
            records.append(make_record(messages, "instruction", "bench.jsonl", len(records) + 1))
    found = [f for f in check_records(records) if f.check == "near_duplicate"]
    return sum(f.index % 2 == 1 for f in found) / pairs


def template_siblings_flagged(rows: int = 2000) -> int:
    """Near-duplicates flagged among rows filled from one template with different numbers."""
    records = []
    for n in range(rows):
        messages = [{"role": "user", "content": f"Question number {n}: what is {n} plus {n}?"}]
        answer = f"The answer to question {n} is {2 * n}, computed carefully."
        messages.append({"role": "assistant", "content": answer})
        records.append(make_record(messages, "instruction", "bench.jsonl", n + 1))
    return sum(f.check == "near_duplicate" for f in check_records(records))


def read_locations(path: Path, checks: set[str]) -> dict[str, set[int]]:
    """Line numbers per check from a JSON-lines file whose rows carry `check` and `source`."""
    found: dict[str, set[int]] = {check: set() for check in checks}
    if not path.exists():
        return found
    with path.open(encoding="utf-8") as rows:
        for text in rows:
            row = json.loads(text)
            if row.get("check") in checks:
                found[row["check"]].add(int(row["source"].rsplit(":", 1)[1]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="tw-data-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.jsonl"
    start = time.perf_counter()
    planted = write_rows(data, args.rows, args.seed)
    print(f"generate_seconds: {time.perf_counter() - start:.1f}")
    config = {
        "name": "data-bench",
        "model": {"name": "smollm2-135m-instruct"},
        "data": {"train": "train.jsonl", "format": "alpaca", "max_invalid_fraction": 0.05},
        "train": {"report_to": []},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    command = [sys.executable, "-m", "tunewright", "data", "prepare", str(folder / "config.yaml")]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"data prepare failed with exit code {done.returncode}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux

    run_data = next((folder / "runs").glob("*/data"))
    rejected = read_locations(run_data / "rejected.jsonl", {"exact_duplicate", "empty_output"})
    unreadable = read_locations(run_data / "rejected.jsonl", {"unreadable"})["unreadable"]
    near = read_locations(run_data / "findings.jsonl", {"near_duplicate"})["near_duplicate"]
    report = json.loads((run_data / "validation.json").read_text(encoding="utf-8"))

    print(f"rows: {args.rows}")
    print(f"input_mb: {data.stat().st_size / 2**20:.0f}")
    print(f"seconds: {seconds:.1f}")
    print(f"rows_per_s: {args.rows / seconds:.0f}")
    print(f"peak_rss_mb: {peak:.0f}")
    print(f"counts: {report['rows']}")
    for name, found in (
        ("exact_duplicates", rejected["exact_duplicate"]),
        ("near_duplicates", near),
        ("empty_outputs", rejected["empty_output"]),
        ("broken_lines", unreadable),
    ):
        kind = name.split("_")[0] if name != "broken_lines" else "broken"
        want = planted[kind]
        print(f"planted_{name}: {len(want)}")
        print(f"recall_{name}: {len(want & found) / max(len(want), 1):.4f}")
    # Near-duplicate warnings beyond the planted copies: pairs the generator made by chance
    # (short Zipf texts) or false alarms; printed so a jump is visible.
    print(f"near_duplicate_warnings_not_planted: {len(near - planted['near'])}")
    # Sensitivity and false alarms of the near-duplicate check on two small side sets.
    print(f"mid_text_edit_recall_40_words: {mid_text_edit_recall(args.seed):.3f}")
    print(f"template_siblings_flagged: {template_siblings_flagged()} of 2000")
    if args.keep is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
