"""DPO throughput, side by side: `tunewright train` (objective dpo) against a plain TRL script.

    python bench/preference_throughput.py [--steps 10] [--rounds 2]

One job for both sides: the embedded SmolLM2-135M-Instruct, the pairs of
examples/preference/pairs.jsonl (the first 94 to train on, the last 24 held out), max length
256, LoRA r16 / alpha 16 / dropout 0 on all linear layers, batch 4 pairs, accumulation 1, AdamW
at 5e-4 with a linear decay and no warmup or weight decay, DPO's sigmoid loss with beta 0.1,
gradient checkpointing off, `--steps` optimizer steps, seed 0. Precision matched: where the CPU
multiplies bf16 natively, tunewright's `auto` (bf16 base weights, fp32 adapter, bf16 autocast) and
TRL with the base loaded in bf16 and `bf16=True`; elsewhere fp32 on both.

    tunewright   `tunewright train` on its defaults for everything the job does not fix
    trl          `DPOTrainer` with `DPOConfig` set to the job (the reference model: the base
                 with the adapter switched off, TRL's default for a PEFT model)

Each run is a fresh child (its own peak RSS) and the sides take turns over the rounds; the table
shows medians. Pairs/s is pairs trained over the training loop alone (tunewright's
`train_loop_seconds`; for TRL the seconds from the start of the loop to the log of the last step,
as Transformers times `train_runtime`). Held-out preference accuracy is computed for both by one
function (`tunewright.evaluation.preference.pair_scores`, the saved adapter on the fp32 base).
The last line is `ratio: X.XX` = tunewright pairs/s / TRL pairs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from train_throughput import CPU_FLAGS, _counting_trainer, _run_child, cpu_info, has_native_bf16

MODEL = "smollm2-135m-instruct"
MAX_LEN, BATCH, LR, RANK, ALPHA, BETA, SEED = 256, 4, 5e-4, 16, 16, 0.1, 0
PAIRS = Path(__file__).resolve().parents[1] / "examples" / "preference" / "pairs.jsonl"
HELDOUT = 24


def write_data(root: Path) -> None:
    lines = PAIRS.read_text(encoding="utf-8").splitlines(keepends=True)
    (root / "train.jsonl").write_text("".join(lines[:-HELDOUT]), encoding="utf-8")
    (root / "heldout.jsonl").write_text("".join(lines[-HELDOUT:]), encoding="utf-8")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# tunewright: its real CLI path.


def start_tunewright(folder: Path, steps: int) -> list[str]:
    config = {
        "name": "bench",
        "seed": SEED,
        "model": {"name": MODEL},
        "data": {"train": "train.jsonl", "eval": "heldout.jsonl", "max_seq_len": MAX_LEN},
        "train": {
            "objective": "dpo",
            "preference": {"beta": BETA, "loss_type": "sigmoid"},
            "method": "lora",
            "lora": {"r": RANK, "alpha": ALPHA, "dropout": 0.0, "target_modules": "all-linear"},
            "max_steps": steps,
            "batch_size": BATCH,
            "grad_accum": 1,
            "learning_rate": LR,
            "lr_scheduler": "linear",
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
            "gradient_checkpointing": False,
            "report_to": [],
        },
    }
    (folder / "config.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    return [sys.executable, "-m", "tunewright", "train", str(folder / "config.yaml")]


def collect_tunewright(folder: Path) -> dict[str, Any]:
    train = folder / "runs" / "bench" / "train"
    manifest = json.loads((train / "manifest.json").read_text())
    metrics = manifest["metrics"]
    losses = [e["loss"] for e in _rows(train / "metrics.jsonl") if "loss" in e]
    return {
        "pairs": metrics["steps"] * BATCH,
        "seconds": metrics["train_loop_seconds"],
        "losses": losses,
        "adapter": str(train / "adapter"),
        "precision": manifest["precision"],
    }


# TRL: a plain DPOTrainer script, run as a child of the bench.


def train_trl(folder: Path, steps: int) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from tunewright.models import load_tokenizer, resolve_model

    model = resolve_model(MODEL)
    bf16 = has_native_bf16(cpu_info()[1])
    rows = [
        {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}],
        }
        for r in _rows(folder / "train.jsonl")
    ]
    args = DPOConfig(
        output_dir=str(folder / "trl"),
        use_cpu=True,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_steps=steps,
        seed=SEED,
        logging_steps=1,
        save_strategy="no",
        max_length=MAX_LEN,
        beta=BETA,
        loss_type=["sigmoid"],
        gradient_checkpointing=False,
        bf16=bf16,
        model_init_kwargs={"dtype": "bfloat16" if bf16 else "float32"},
    )
    peft = LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules="all-linear",
        task_type="CAUSAL_LM",
    )  # fmt: skip
    trainer = _counting_trainer(DPOTrainer)(
        model=str(model),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(model),
        peft_config=peft,
    )
    trainer.train()
    trainer.save_model(str(folder / "adapter"))
    last = trainer.bench_log[-1]
    result = {
        "pairs": steps * BATCH,
        "seconds": last["seconds"],
        "losses": [e["loss"] for e in trainer.bench_log],
        "adapter": str(folder / "adapter"),
        "precision": {"compute": "bfloat16" if bf16 else "float32"},
    }
    (folder / "result.json").write_text(json.dumps(result))


def heldout_accuracy(folder: Path) -> None:
    """Preference accuracy of the saved adapter on heldout.jsonl (fp32 base)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunewright.evaluation.preference import pair_scores
    from tunewright.models import load_tokenizer, resolve_model

    adapter = json.loads((folder / "result.json").read_text())["adapter"]
    base = resolve_model(MODEL)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter).eval()
    records = [
        {
            "task": "preference",
            "messages": [{"role": "user", "content": r["prompt"]}],
            "chosen": r["chosen"],
            "rejected": r["rejected"],
        }
        for r in _rows(folder / "heldout.jsonl")
    ]
    scores = pair_scores(model, load_tokenizer(base), records, MAX_LEN)
    (folder / "heldout.json").write_text(json.dumps({"accuracy": sum(scores) / len(scores)}))


# ---------------------------------------------------------------------------------------------


def run_once(name: str, root: Path, round_: int, steps: int) -> dict[str, Any]:
    folder = root / f"{name}-{round_}"
    folder.mkdir()
    for file in ("train.jsonl", "heldout.jsonl"):
        shutil.copy(root / file, folder / file)
    child = [sys.executable, __file__, "--child", "{}", str(folder), str(steps)]
    command = start_tunewright(folder, steps) if name == "tunewright" else _child(child, "trl")
    start = time.perf_counter()
    code, peak_kb = _run_child(command, folder, folder / "train.log")
    if code != 0:
        tail = (folder / "train.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{name} failed (exit {code}); log {folder / 'train.log'}:\n{tail}")
    result = collect_tunewright(folder) if name == "tunewright" else _read(folder)
    (folder / "result.json").write_text(json.dumps(result))
    code, _ = _run_child(_child(child, "heldout"), folder, folder / "heldout.log")
    if code != 0:
        raise SystemExit(f"held-out accuracy of {name} failed; log {folder / 'heldout.log'}")
    losses = result["losses"]
    return {
        **result,
        "pairs_per_s": result["pairs"] / result["seconds"],
        "peak_rss_gb": peak_kb / 1024**2,
        "final_loss": sum(losses[-3:]) / len(losses[-3:]),
        "heldout_accuracy": json.loads((folder / "heldout.json").read_text())["accuracy"],
        "wall_s": time.perf_counter() - start,
    }


def _child(template: list[str], name: str) -> list[str]:
    return [name if part == "{}" else part for part in template]


def _read(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "result.json").read_text())


def report(runs: dict[str, list[dict[str, Any]]]) -> None:
    tools = {
        "tunewright": f"tunewright {metadata.version('tunewright')}",
        "trl": f"TRL {metadata.version('trl')} DPOTrainer",
    }
    print(
        "\n| tool | pairs/s (median) | per round | peak RSS | final loss | held-out preference "
        "accuracy |\n|---|---|---|---|---|---|"
    )
    for name, done in runs.items():
        speeds = [r["pairs_per_s"] for r in done]
        print(
            f"| {tools[name]} | {statistics.median(speeds):.2f} | "
            f"{', '.join(f'{s:.2f}' for s in speeds)} | "
            f"{statistics.median(r['peak_rss_gb'] for r in done):.2f} GB | "
            f"{statistics.median(r['final_loss'] for r in done):.4f} | "
            f"{statistics.median(r['heldout_accuracy'] for r in done):.3f} |"
        )
    mine = statistics.median(r["pairs_per_s"] for r in runs["tunewright"])
    theirs = statistics.median(r["pairs_per_s"] for r in runs["trl"])
    print(f"\nratio: {mine / theirs:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="round-robin rounds (medians)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # NAME FOLDER STEPS
    args = parser.parse_args()
    if args.child:
        name, folder, steps = args.child
        if name == "heldout":
            return heldout_accuracy(Path(folder))
        return train_trl(Path(folder), int(steps))
    name, flags = cpu_info()
    print(f"cpu: {name}, {os.cpu_count()} logical cores")
    print("flags: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FLAGS))
    from tunewright.models import resolve_model

    resolve_model(MODEL)  # converted into the cache once, before anything is timed
    root = Path(tempfile.mkdtemp(prefix="tw-dpo-bench-"))
    write_data(root)
    print(
        f"job: {MODEL}, DPO sigmoid beta {BETA}, {len(_rows(root / 'train.jsonl'))} "
        f"train / {HELDOUT} held-out pairs, max length {MAX_LEN}, LoRA r{RANK}/alpha {ALPHA}/"
        f"dropout 0 all-linear, batch {BATCH}, lr {LR} linear, {args.steps} steps, seed {SEED}, "
        f"bf16 {'yes' if has_native_bf16(flags) else 'no'}; {args.rounds} rounds in {root}",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {"tunewright": [], "trl": []}
    for round_ in range(1, args.rounds + 1):
        for side in runs:
            result = run_once(side, root, round_, args.steps)
            runs[side].append(result)
            print(
                f"round {round_} {side}: {result['pairs_per_s']:.2f} pairs/s ({result['pairs']} "
                f"pairs in {result['seconds']:.1f} s), peak RSS {result['peak_rss_gb']:.2f} GB, "
                f"final loss {result['final_loss']:.4f}, held-out accuracy "
                f"{result['heldout_accuracy']:.3f}; {result['wall_s']:.0f} s in all",
                flush=True,
            )
    report(runs)


if __name__ == "__main__":
    main()
