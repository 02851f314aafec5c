"""Training throughput: tunewright against a plain TRL `SFTTrainer` script, same data and
hyperparameters (embedded SmolLM2-135M-Instruct, LoRA r=16 on all linear layers, max length 256,
batch 4, fp32, completion-only loss).

    python bench/train_throughput.py [--steps 12]

Both run in this one bench invocation, one after the other, each in a fresh child process so
that its peak RSS is its own. Printed per side: non-padding tokens/s over the training loop
(model loading excluded), peak RSS, final train loss (mean of the last 3 steps) and the loss on
a fixed held-out set computed by the same function for both. The last line is
`ratio: X.XX` = tunewright tokens/s / TRL tokens/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

MAX_LEN, BATCH, LR, RANK, SEED = 256, 4, 2e-4, 16, 0
TOPICS = [
    "the ocean",
    "volcanoes",
    "bread",
    "bicycles",
    "owls",
    "glaciers",
    "chess",
    "tea",
    "bridges",
    "rain",
    "maps",
    "bees",
    "trains",
    "clocks",
    "salt",
    "paper",
]


def make_rows(n: int, seed: int = SEED) -> list[dict[str, str]]:
    """Instruction rows of varied length (answers of 15-150 words), like real SFT data."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        words = rng.randint(15, 150)
        facts = " ".join(
            f"{topic} fact {j} is about {rng.choice(TOPICS)}." for j in range(words // 6)
        )
        rows.append({"instruction": f"Tell me about {topic} ({i}).", "output": facts})
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_tunewright(workdir: str, steps: int, queue: Any) -> None:
    from tunewright.config import load_config
    from tunewright.training.stage import build_job, run_job

    config = load_config(Path(workdir) / "config.yaml", [f"train.max_steps={steps}"])
    job = build_job(config)
    start = time.perf_counter()
    result = run_job(config, job)
    seconds = result.metrics["train_seconds"] or time.perf_counter() - start
    losses = _losses(Path(workdir) / "runs" / "bench" / "train" / "metrics.jsonl")
    queue.put(
        {
            "tokens": result.metrics["tokens_seen"],
            "seconds": seconds,
            "final_loss": sum(losses[-3:]) / 3,
            "heldout_loss": heldout_loss(job.model, workdir),
            "peak_rss_mb": peak_rss_mb(),
        }
    )


def _losses(path: Path) -> list[float]:
    return [e["loss"] for e in map(json.loads, path.read_text().splitlines()) if "loss" in e]


def run_trl(workdir: str, steps: int, queue: Any) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunewright.models import resolve_model

    folder = resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    rows = json.loads((Path(workdir) / "train_rows.json").read_text())
    dataset = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["instruction"]}],
                "completion": [{"role": "assistant", "content": r["output"]}],
            }
            for r in rows
        ]
    )
    args = SFTConfig(
        output_dir=str(Path(workdir) / "trl"),
        max_length=MAX_LEN,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        max_steps=steps,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        weight_decay=0.001,
        logging_steps=1,
        report_to=[],
        bf16=False,
        use_cpu=True,
        seed=SEED,
        save_strategy="no",
        disable_tqdm=True,
    )
    counter = {"tokens": 0}
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=RANK,
            lora_alpha=2 * RANK,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    collate = trainer.data_collator

    def counting(batch: list[dict]) -> dict:
        out = collate(batch)
        counter["tokens"] += int(out["attention_mask"].sum())
        return out

    trainer.data_collator = counting
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    queue.put(
        {
            "tokens": counter["tokens"],
            "seconds": seconds,
            "final_loss": sum(losses[-3:]) / 3,
            "heldout_loss": heldout_loss(trainer.model, workdir),
            "peak_rss_mb": peak_rss_mb(),
        }
    )


def heldout_loss(model: Any, workdir: str) -> float:
    """Mean completion-token loss on the held-out rows, the same way for both sides."""
    import torch

    from tunewright.chat import render_example
    from tunewright.models import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model("smollm2-135m-instruct"))
    rows = json.loads((Path(workdir) / "heldout_rows.json").read_text())
    total, count = 0.0, 0
    model.eval()
    for row in rows:
        rendered = render_example(
            tokenizer,
            [
                {"role": "user", "content": row["instruction"]},
                {"role": "assistant", "content": row["output"]},
            ],
            max_seq_len=MAX_LEN,
        )
        ids = torch.tensor([rendered.input_ids])
        labels = torch.tensor([rendered.labels])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        targets = labels[0, 1:]
        mask = targets != -100
        total += float(
            torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum")
        )
        count += int(mask.sum())
    return total / count


def child(target: Any, workdir: str, steps: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(workdir, steps, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="tw-bench-")
    rows = make_rows(BATCH * args.steps + 16)
    train, heldout = rows[: BATCH * args.steps], rows[BATCH * args.steps :]
    Path(workdir, "train_rows.json").write_text(json.dumps(train))
    Path(workdir, "heldout_rows.json").write_text(json.dumps(heldout))
    Path(workdir, "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    Path(workdir, "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in heldout))
    Path(workdir, "config.yaml").write_text(
        "name: bench\nmodel:\n  name: smollm2-135m-instruct\n"
        f"data:\n  train: train.jsonl\n  eval: heldout.jsonl\n  max_seq_len: {MAX_LEN}\n"
        "  max_truncated_fraction: 1.0\n  max_invalid_fraction: 1.0\n  allow_leakage: true\n"
        f"train:\n  method: lora\n  lora: {{r: {RANK}, alpha: {2 * RANK}, dropout: 0.05}}\n"
        f"  batch_size: {BATCH}\n  grad_accum: 1\n  learning_rate: {LR}\n  epochs: 1\n"
        "  precision: fp32\n  report_to: []\n  save_every: 100000\n  eval_every: 100000\n"
    )
    print(f"workdir: {workdir}; {args.steps} steps of batch {BATCH}, max length {MAX_LEN}")
    results = {
        "tunewright": child(run_tunewright, workdir, args.steps),
        "trl": child(run_trl, workdir, args.steps),
    }
    for name, r in results.items():
        speed = r["tokens"] / r["seconds"]
        r["tokens_per_s"] = speed
        print(
            f"{name}: {speed:.1f} tokens/s ({r['tokens']} tokens in {r['seconds']:.1f} s), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, final train loss {r['final_loss']:.4f}, "
            f"held-out loss {r['heldout_loss']:.4f}"
        )
    ratio = results["tunewright"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
    print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
