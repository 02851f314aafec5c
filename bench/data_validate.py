"""Time `check_records` on a synthetic alpaca-like dataset and print rows/s and peak memory.

    python bench/data_validate.py [--rows 100000] [--seed 0]

The dataset is built in memory: varied instructions and answers over a 20,000-word Zipf-like
vocabulary, with 0.5% planted exact duplicates and 0.5% planted near-duplicates (a copy whose
answer has its last word changed). Near-duplicate precision and recall are against those planted
copies; two small side sets measure sensitivity (one word changed mid-text in 40-word texts) and
false alarms between template siblings. The figures printed are one `key: value` per line.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter

import numpy as np

from tunewright.data.checks import (
    check_records,
    duplicate_index,
    find_leaks,
    near_duplicate_groups,
)
from tunewright.data.records import Record, make_record

VERBS = ["Explain", "Describe", "Summarize", "List", "Compare", "Write", "Give", "Suggest"]
SYLLABLES = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "de", "pa", "zu", "qe", "ho", "bi"]


def make_vocabulary(rng: np.random.Generator, size: int = 20_000) -> list[str]:
    """Distinct pseudo-words of 2-4 syllables."""
    words: dict[str, None] = {}
    while len(words) < size:
        count = int(rng.integers(2, 5))
        words["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), count))] = None
    return list(words)


def make_dataset(rows: int, seed: int) -> tuple[list[Record], int, int]:
    """`rows` records plus how many exact and near duplicates were planted among them."""
    rng = np.random.default_rng(seed)
    vocabulary = make_vocabulary(rng)
    # Zipf-like word frequencies (p ~ 1/rank), as in natural text.
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)
    draws = rng.choice(len(vocabulary), size=rows * 60, p=weights / weights.sum())
    cursor = 0
    records: list[Record] = []
    planted = rows // 200  # 0.5% exact + 0.5% near
    for line in range(1, rows - 2 * planted + 1):
        prompt_len, answer_len = int(rng.integers(6, 16)), int(rng.integers(15, 45))
        words = [vocabulary[i] for i in draws[cursor : cursor + prompt_len + answer_len]]
        cursor += prompt_len + answer_len
        instruction = f"{VERBS[line % len(VERBS)]} {' '.join(words[:prompt_len])}."
        answer = " ".join(words[prompt_len:]).capitalize() + "."
        messages = [{"role": "user", "content": instruction}]
        messages.append({"role": "assistant", "content": answer})
        records.append(make_record(messages, "instruction", "bench.jsonl", line))
    for n in range(2 * planted):
        source = records[int(rng.integers(0, len(records)))]
        messages = [dict(m) for m in source["messages"]]
        if n % 2:  # near-duplicate: the answer's last word changed
            messages[-1]["content"] = messages[-1]["content"].rsplit(" ", 1)[0] + f" edit{n}."
        records.append(make_record(messages, "instruction", "bench.jsonl", len(records) + 1))
    return records, planted, planted


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    records, exact, near = make_dataset(args.rows, args.seed)
    # ru_maxrss is in KiB on Linux: the process peak, so measure it before and after.
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    findings = check_records(records)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = Counter(f.check for f in findings)

    print(f"rows: {len(records)}")
    print(f"seconds: {seconds:.2f}")
    print(f"rows_per_s: {len(records) / seconds:.0f}")
    print(f"rss_before_check_mb: {rss_before:.0f}")
    print(f"peak_rss_mb: {peak:.0f}")
    print(f"planted_exact_duplicates: {exact}")
    print(f"found_exact_duplicates: {counts['exact_duplicate']}")
    print(f"planted_near_duplicates: {near}")
    print(f"found_near_duplicates: {counts['near_duplicate']}")
    # Planted near copies are the last rows, every other one from len(records) - 2 * near + 1.
    planted = set(range(len(records) - 2 * near + 1, len(records), 2))
    flagged = {f.index for f in findings if f.check == "near_duplicate"}
    print(f"near_duplicate_precision: {len(flagged & planted) / max(len(flagged), 1):.3f}")
    print(f"near_duplicate_recall: {len(flagged & planted) / max(len(planted), 1):.3f}")
    for check in sorted(counts.keys() - {"exact_duplicate", "near_duplicate"}):
        print(f"found_{check}: {counts[check]}")
    print(f"mid_text_edit_recall_40_words: {mid_text_edit_recall(args.seed):.3f}")
    print(f"template_siblings_flagged: {template_siblings_flagged()} of 2000")

    # The other two passes `data prepare` makes: grouping for the split, and a 90/10 leak check.
    start = time.perf_counter()
    near_duplicate_groups(records)
    print(f"near_duplicate_groups_seconds: {time.perf_counter() - start:.2f}")
    # As `data prepare` runs them: one index for checks and for grouping the kept rows.
    start = time.perf_counter()
    duplicates = duplicate_index(records)
    found = check_records(records, duplicates=duplicates)
    rejected = {f.index for f in found if f.check == "exact_duplicate"}
    kept = [r for i, r in enumerate(records) if i not in rejected]
    near_duplicate_groups(kept, duplicates=duplicates)
    print(f"checks_and_groups_sharing_index_seconds: {time.perf_counter() - start:.2f}")
    cut = len(records) * 9 // 10
    start = time.perf_counter()
    leaks = find_leaks(records[:cut], records[cut:])  # planted copies sit at the end: most leak
    print(f"find_leaks_seconds: {time.perf_counter() - start:.2f}")
    print(f"leaks_found: {len(leaks)}")
    print(f"peak_rss_mb_all: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


if __name__ == "__main__":
    main()
