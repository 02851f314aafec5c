"""Generation throughput for evaluation: batched (left padding, KV cache, length-sorted
batches) against one example at a time, on the embedded SmolLM2-135M-Instruct.

    python bench/eval_throughput.py [--examples 32] [--batch-size 16] [--max-new-tokens 48]

Prints examples/s for both, whether their greedy outputs agree, and ends with
`ratio: X.XX` = batched examples/s / one-at-a-time examples/s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tunewright.generate import Decoding, generate
from tunewright.models import load_causal_lm, load_tokenizer, resolve_model

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "orders.jsonl"


def prompts(count: int) -> list[list[dict[str, str]]]:
    rows = [json.loads(line) for line in QUICKSTART.read_text().splitlines()[:count]]
    return [[{"role": "user", "content": f"{r['instruction']}\n\n{r['input']}"}] for r in rows]


def timed(model, tokenizer, conversations, decoding, batch_size) -> tuple[float, list[str]]:
    start = time.perf_counter()
    outputs = generate(model, tokenizer, conversations, decoding, batch_size)
    return time.perf_counter() - start, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    folder = resolve_model("smollm2-135m-instruct")
    model, tokenizer = load_causal_lm(folder).eval(), load_tokenizer(folder)
    conversations = prompts(args.examples)
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    generate(model, tokenizer, conversations[:2], decoding, 2)  # warm-up: first-call overheads
    single_s, single = timed(model, tokenizer, conversations, decoding, 1)
    batched_s, batched = timed(model, tokenizer, conversations, decoding, args.batch_size)
    agree = sum(a == b for a, b in zip(single, batched, strict=True))
    n = len(conversations)
    print(f"examples: {n}, max_new_tokens: {args.max_new_tokens}")
    print(f"one at a time: {n / single_s:.2f} examples/s ({single_s:.1f} s)")
    print(f"batched (batch {args.batch_size}): {n / batched_s:.2f} examples/s ({batched_s:.1f} s)")
    print(f"identical outputs: {agree}/{n}")
    print(f"ratio: {single_s / batched_s:.2f}")


if __name__ == "__main__":
    main()
