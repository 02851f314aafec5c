"""Training throughput, side by side: tunewright on its defaults against TRL and LLaMA-Factory.

    python bench/train_throughput.py [--steps 10] [--rounds 3] [--only NAME,...]
                                     [--skip-llamafactory]

One job for every side: the embedded SmolLM2-135M-Instruct, the same 400 generated alpaca rows
(answers of 20-200 words), max length 256, LoRA r16 / alpha 16 / dropout 0 on all linear layers,
batch 4, accumulation 1, AdamW at 2e-4 with a linear decay and no warmup or weight decay,
`--steps` optimizer steps, seed 0. Everything the job does not fix stays at each side's defaults
except where a configuration below says otherwise:

    tunewright          `tunewright train` on its defaults (precision auto, ...)
    trl-fastest         TRL SFTTrainer, padding_free, gradient checkpointing off, bf16 base
                        weights + bf16 autocast where the CPU has native bf16 (else fp32)
    trl-defaults        TRL SFTTrainer, SFTConfig defaults (gradient checkpointing on, bf16
                        autocast over fp32 weights, padded batches)
    llamafactory-fp32   `llamafactory-cli train`, fp32 (its default on CPU)
    llamafactory-bf16   the same with `bf16: true`; only where the CPU has native bf16

Every run is a fresh child process, so its peak RSS is its own, and the configurations take
turns (round-robin, `--rounds` rounds) so a machine that slows down mid-run slows all of them
alike; the table shows medians. Tokens/s is the training loop alone: non-padding tokens over
the seconds from the start of the Trainer's loop to the log of the last optimizer step
(Transformers' own `train_runtime` at that log; model loading, data preparation, evaluation and
saving are outside it). The held-out loss is computed for every side by one function here, in
another fresh child: the saved adapter on the fp32 base, mean token loss over the answers of 40
held-out rows. LLaMA-Factory runs in its own virtual environment, created on first use under
bench/peers/llamafactory/ (see bench/peers/README.md). The last line is
`ratio: X.XX` = tunewright tokens/s / the fastest LLaMA-Factory setting's tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

MODEL = "smollm2-135m-instruct"
MAX_LEN, BATCH, LR, RANK, ALPHA, SEED = 256, 4, 2e-4, 16, 16, 0
TRAIN_ROWS, HELDOUT_ROWS = 400, 40
# The model's own default system prompt (its chat template adds it when a chat has none);
# LLaMA-Factory's smollm2 template carries a variant with a full stop, so it is set explicitly.
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
LF_HOME = PEERS / "llamafactory"
LF_VENV = LF_HOME / "venv"
LF_READY = LF_HOME / "ready.txt"  # written last by the setup, with the installed versions
TORCH_PIN = "torch==2.13.0"  # the CPU build; see bench/peers/README.md


# ---------------------------------------------------------------------------------------------
# The data, the same for every side


TOPICS = [
    "the ocean", "volcanoes", "sourdough bread", "bicycles", "owls", "glaciers", "chess",
    "green tea", "suspension bridges", "monsoon rain", "old maps", "honey bees", "night trains",
    "pendulum clocks", "sea salt", "handmade paper", "coral reefs", "desert plants", "comets",
    "wind farms", "public libraries", "street markets", "lighthouses", "river deltas",
]  # fmt: skip
ASKS = [
    "Tell me about {}.", "Explain how {} work, briefly.", "Write a short note on {}.",
    "What should a beginner know about {}?", "Describe {} to a child.",
    "Give me a few facts about {}.", "Why do people find {} interesting?",
    "Summarise what is known about {}.",
]  # fmt: skip
WORDS = (
    "water light stone wood iron glass salt sand wind heat cold air soil root leaf seed shell "
    "wave tide storm cloud frost flame smoke dust clay metal rope wheel gear spring lamp map "
    "road path hill valley shore island harbour village city market school farm field garden "
    "forest river lake pond cave cliff peak slope plain marsh reef current season morning "
    "evening winter summer autumn spring year century history craft skill tool method rule "
    "pattern shape colour sound scent taste weight size speed distance height depth surface "
    "layer edge centre corner line curve circle grain fibre thread knot fold crack joint"
).split()
VERBS = (
    "shapes holds carries turns moves warms cools feeds guides marks changes protects "
    "supports reflects stores shows hides joins divides slows lifts follows crosses"
).split()
ADJECTIVES = (
    "small large old young bright dark quiet loud slow quick soft hard warm cold deep "
    "shallow narrow wide rough smooth heavy light simple careful patient steady"
).split()


def make_rows(n: int, seed: int = SEED) -> list[dict[str, str]]:
    """Alpaca rows (instruction, input, output) with answers of 20-200 words, deterministic."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        words: list[str] = []
        target = rng.randint(20, 200)
        while len(words) < target:
            words += _sentence(rng, topic).split()
        answer = " ".join(words[:target]).rstrip(",.") + "."
        rows.append({"instruction": rng.choice(ASKS).format(topic), "input": "", "output": answer})
    return rows


def _sentence(rng: random.Random, topic: str) -> str:
    """A sentence with a random word every second or third position: fixed runs stay short,
    so no two answers share a long n-gram (the data stage reports those as eval leakage)."""
    a, b = rng.choice(ADJECTIVES), rng.choice(ADJECTIVES)
    n1, n2, n3 = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
    verb = rng.choice(VERBS)
    return rng.choice(
        [
            f"The {a} {n1} {verb} the {n2}.",
            f"In {topic}, a {a} {n1} {verb} {b} {n2}.",
            f"A {a} {n1} {verb} the {n2} near the {b} {n3}.",
            f"Each {n1} of {topic} {verb} a {a} {n2}.",
            f"Some {n1} {verb} {n2}, and {b} {n3} follows.",
        ]
    )


def write_data(folder: Path) -> None:
    """train.jsonl (400 rows) and heldout.jsonl (40 rows) in `folder`."""
    rows = make_rows(TRAIN_ROWS + HELDOUT_ROWS)
    _write_jsonl(folder / "train.jsonl", rows[:TRAIN_ROWS])
    _write_jsonl(folder / "heldout.jsonl", rows[TRAIN_ROWS:])


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------------------------------------
# The machine


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags, from /proc/cpuinfo (Linux)."""
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    name = fields.get("model name") or platform.processor() or "unknown"
    return name, set(fields.get("flags", "").split())


def has_native_bf16(flags: set[str]) -> bool:
    """The same rule tunewright's `auto` precision uses, so every side gets bf16 or none does."""
    from tunewright.device import CPU_BF16_FLAGS

    return bool(flags & set(CPU_BF16_FLAGS))


# ---------------------------------------------------------------------------------------------
# The configurations


@dataclass(frozen=True)
class Configuration:
    name: str  # for --only
    tool: str
    setting: str
    start: Callable[[Path, int], list[str]]  # (run folder, steps) -> the child's command line
    collect: Callable[[Path], dict[str, Any]]  # run folder -> tokens, seconds, losses, adapter


def configurations(bf16: bool) -> list[Configuration]:
    trl = f"TRL {metadata.version('trl')}"
    trl_fast = "bf16 base weights + bf16 autocast" if bf16 else "fp32"
    lf = f"LLaMA-Factory {_llamafactory_version() or '0.9.5'}"
    found = [
        Configuration(
            "tunewright",
            f"tunewright {metadata.version('tunewright')}",
            "defaults (`tunewright train`)",
            start_tunewright,
            collect_tunewright,
        ),
        Configuration(
            "trl-fastest",
            trl,
            f"SFTTrainer, padding_free, gradient checkpointing off, {trl_fast}",
            lambda folder, steps: _bench_child("trl-fastest", folder, steps),
            collect_child,
        ),
        Configuration(
            "trl-defaults",
            trl,
            "SFTTrainer, SFTConfig defaults (gradient checkpointing on, bf16 autocast over "
            "fp32 weights, padded)",
            lambda folder, steps: _bench_child("trl-defaults", folder, steps),
            collect_child,
        ),
        Configuration(
            "llamafactory-fp32",
            lf,
            "llamafactory-cli train, fp32 (its default on CPU)",
            lambda folder, steps: start_llamafactory(folder, steps, bf16=False),
            collect_llamafactory,
        ),
    ]
    if bf16:
        found.append(
            Configuration(
                "llamafactory-bf16",
                lf,
                "llamafactory-cli train, `bf16: true`",
                lambda folder, steps: start_llamafactory(folder, steps, bf16=True),
                collect_llamafactory,
            )
        )
    return found


def _bench_child(name: str, folder: Path, steps: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", name, str(folder), str(steps)]


# tunewright: its real CLI path, with a config that sets only what the job fixes.


def start_tunewright(folder: Path, steps: int) -> list[str]:
    config = {
        "name": "bench",
        "seed": SEED,
        "model": {"name": MODEL},
        "data": {
            "train": "train.jsonl",
            "eval": "heldout.jsonl",  # train on all 400 rows, as the other sides do
            "max_seq_len": MAX_LEN,
            "max_truncated_fraction": 1.0,  # answers of up to 200 words run past 256 tokens
        },
        "train": {
            "method": "lora",
            "lora": {"r": RANK, "alpha": ALPHA, "dropout": 0.0, "target_modules": "all-linear"},
            "max_steps": steps,
            "batch_size": BATCH,
            "grad_accum": 1,
            "learning_rate": LR,
            "lr_scheduler": "linear",
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
        },
    }
    (folder / "config.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    return [sys.executable, "-m", "tunewright", "train", str(folder / "config.yaml")]


def collect_tunewright(folder: Path) -> dict[str, Any]:
    train = folder / "runs" / "bench" / "train"
    steps = [e for e in _read_jsonl(train / "metrics.jsonl") if "loss" in e]
    last = steps[-1]
    if "train_runtime" in last and "num_input_tokens_seen" in last:  # Transformers' own
        tokens, seconds = last["num_input_tokens_seen"], last["train_runtime"]
    else:  # tunewright's count over the same span
        tokens, seconds = last["tokens_seen"], last["tokens_seen"] / last["tokens_per_s"]
    manifest = json.loads((train / "manifest.json").read_text())
    return {
        "tokens": tokens,
        "seconds": seconds,
        "losses": [e["loss"] for e in steps],
        "adapter": str(train / "adapter"),
        "note": _precision_note(manifest.get("precision")),
    }


def _precision_note(precision: Any) -> str:
    if isinstance(precision, dict) and "compute" in precision:
        base = precision.get("base_weights") or precision.get("base", "?")
        return f"resolved: compute {precision['compute']}, base weights {base}"
    return f"precision {precision}" if precision else ""


# TRL: a plain SFTTrainer script, run in this interpreter as a child of the bench.


def train_trl(folder: Path, steps: int, fastest: bool) -> None:
    """Train with TRL's SFTTrainer and write result.json and the adapter into `folder`."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from tunewright.models import load_tokenizer, resolve_model

    model = resolve_model(MODEL)
    chats = [
        {
            "prompt": [{"role": "user", "content": r["instruction"]}],
            "completion": [{"role": "assistant", "content": r["output"]}],
        }
        for r in _read_jsonl(folder / "train.jsonl")
    ]  # prompt-completion: TRL's default loss is on the completion only
    settings: dict[str, Any] = {"max_length": MAX_LEN}
    if fastest:
        bf16 = has_native_bf16(cpu_info()[1])
        # TRL refuses padding_free with max_length (it would not truncate), so the examples
        # come tokenized and cut at MAX_LEN as TRL's own preparation does (keep the start).
        chats = _tokenized(chats, load_tokenizer(model))
        settings = {
            "max_length": None,
            "completion_only_loss": True,
            "gradient_checkpointing": False,
            "padding_free": True,
            "bf16": bf16,
            "model_init_kwargs": {"dtype": "bfloat16" if bf16 else "float32"},
        }
    args = SFTConfig(
        output_dir=str(folder / "trl"),
        use_cpu=True,  # required on a machine without a GPU: SFTConfig defaults to bf16=True
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        lr_scheduler_type="linear",
        max_steps=steps,
        seed=SEED,
        logging_steps=1,  # every step's loss, for the final-loss column
        save_strategy="no",  # the adapter is saved below, after the timed loop
        **settings,
    )
    peft = LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = _counting_trainer(SFTTrainer)(
        model=str(model),
        args=args,
        train_dataset=Dataset.from_list(chats),
        peft_config=peft,
    )
    trainer.train()
    trainer.save_model(str(folder / "adapter"))
    last = trainer.bench_log[-1]
    result = {
        "tokens": last["tokens"],
        "seconds": last["seconds"],
        "losses": [e["loss"] for e in trainer.bench_log],
        "adapter": str(folder / "adapter"),
    }
    (folder / "result.json").write_text(json.dumps(result))


def _tokenized(chats: list[dict], tokenizer: Any) -> list[dict]:
    """Prompt-completion chats tokenized by TRL's own preparation steps (the chat template over
    the prompt with a generation prompt and over prompt + completion; the loss on the tokens
    after their common prefix), cut to MAX_LEN tokens from the start as TRL would."""
    from trl.data_utils import _tokenize, common_prefix_length

    examples = []
    for chat in chats:
        prompt = _tokenize(tokenizer, chat["prompt"], add_generation_prompt=True)["input_ids"]
        full = _tokenize(tokenizer, chat["prompt"] + chat["completion"])["input_ids"]
        start = common_prefix_length(prompt, full)
        mask = [0] * start + [1] * (len(full) - start)
        examples.append({"input_ids": full[:MAX_LEN], "completion_mask": mask[:MAX_LEN]})
    return examples


def _counting_trainer(base: type) -> type:
    """`base` counting the non-padding tokens of the batches it trains on, and the loop's
    seconds at each step's log the way Transformers times `train_runtime`. (Counting in the
    collator would also count the batch the data loader fetches ahead; Transformers' own
    `non_padding` count takes pad ids for padding, and SmolLM2's pad is its end-of-turn token.)"""

    class Counting(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.bench_tokens = 0
            self.bench_log: list[dict[str, float]] = []

        def training_step(self, model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
            mask = inputs.get("attention_mask")
            ids = inputs["input_ids"]
            self.bench_tokens += int(mask.sum()) if mask is not None else ids.numel()
            return super().training_step(model, inputs, *args, **kwargs)

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs and start_time is not None:
                seconds = time.time() - start_time
                self.bench_log.append(
                    {"loss": float(logs["loss"]), "tokens": self.bench_tokens, "seconds": seconds}
                )
            super().log(logs, start_time)

    return Counting


def collect_child(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "result.json").read_text())


# LLaMA-Factory: `llamafactory-cli train <yaml>` in its own virtual environment.


def start_llamafactory(folder: Path, steps: int, *, bf16: bool) -> list[str]:
    from tunewright.models import resolve_model

    data = folder / "lf-data"
    data.mkdir()
    shutil.copy(folder / "train.jsonl", data / "train.jsonl")
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    info = {"bench": {"file_name": "train.jsonl", "columns": columns}}
    (data / "dataset_info.json").write_text(json.dumps(info))
    config = {
        "model_name_or_path": str(resolve_model(MODEL)),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "lora_rank": RANK,
        "lora_alpha": ALPHA,
        "lora_dropout": 0.0,
        "disable_gradient_checkpointing": True,  # its default is on
        "dataset": "bench",
        "dataset_dir": str(data),
        "template": "smollm2",
        "default_system": SMOLLM2_SYSTEM,
        "cutoff_len": MAX_LEN,
        "overwrite_cache": True,
        "output_dir": str(folder / "lf-out"),
        "overwrite_output_dir": True,
        "logging_steps": 1,  # every step's loss, tokens and runtime
        "save_strategy": "no",  # no checkpoint inside the timed loop; the adapter is saved after
        "per_device_train_batch_size": BATCH,
        "gradient_accumulation_steps": 1,
        "learning_rate": LR,
        "lr_scheduler_type": "linear",
        "max_steps": steps,
        "seed": SEED,
        "use_cpu": True,
        "bf16": bf16,
        "include_num_input_tokens_seen": "non_padding",  # counts the attention mask
        "report_to": "none",
    }
    (folder / "llamafactory.yaml").write_text(json.dumps(config, indent=2))
    return [str(LF_VENV / "bin" / "llamafactory-cli"), "train", str(folder / "llamafactory.yaml")]


def collect_llamafactory(folder: Path) -> dict[str, Any]:
    """The log of the last step in trainer_state.json: Transformers' `train_runtime` there runs
    from the start of the loop to that log (all_results.json's adds the end-of-training
    bookkeeping; both exclude model loading and data preparation, and no evaluation runs)."""
    out = folder / "lf-out"
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    steps = [e for e in history if "loss" in e]
    last = steps[-1]
    return {
        "tokens": last["num_input_tokens_seen"],
        "seconds": last["train_runtime"],
        "losses": [e["loss"] for e in steps],
        "adapter": str(out),
    }


# ---------------------------------------------------------------------------------------------
# LLaMA-Factory's virtual environment


def ensure_llamafactory() -> None:
    """Create bench/peers/llamafactory/venv on first use (several minutes, once).

    On a CPU-only machine: torch first, alone (from TORCH_INDEX when set, e.g.
    https://download.pytorch.org/whl/cpu), then llamafactory with torch held by a
    constraint (else pip swaps in a CUDA build for a newer torchvision); then remove
    torchvision (its PyPI build for this torch is a CUDA build that breaks model imports in
    transformers) and move torchaudio's native libraries aside (LLaMA-Factory imports
    torchaudio unconditionally; it still imports without them)."""
    if LF_READY.exists():
        return
    print("creating LLaMA-Factory's virtual environment (several minutes, once)", flush=True)
    python = LF_VENV / "bin" / "python"
    if not python.exists():
        _setup_step([sys.executable, "-m", "venv", str(LF_VENV)])
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    index = os.environ.get("TORCH_INDEX")  # as for `make install`: PyPI's torch is a CUDA build
    _setup_step([*pip, TORCH_PIN, *(["--index-url", index] if index else [])])
    constraint = LF_HOME / "constraints.txt"
    constraint.write_text(TORCH_PIN + "\n")
    requirements = PEERS / "llamafactory-requirements.txt"
    _setup_step([*pip, "-r", str(requirements), "-c", str(constraint)])
    _setup_step([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "torchvision"])
    for lib in LF_VENV.glob("lib/python*/site-packages/torchaudio/lib"):
        aside = lib.parent / "lib-disabled"
        aside.mkdir(exist_ok=True)
        for so in lib.glob("*.so"):
            so.rename(aside / so.name)
    _setup_step([str(python), "-c", "import llamafactory.train.tuner"])
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    )
    LF_READY.write_text(freeze.stdout)


def _setup_step(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"LLaMA-Factory setup failed at: {' '.join(command)}\n{done.stderr[-3000:]}\n"
            "Run the bench with --skip-llamafactory to leave it out."
        )


def _llamafactory_version() -> str | None:
    found = sorted(LF_VENV.glob("lib/python*/site-packages/llamafactory-*.dist-info"))
    return found[0].name.removesuffix(".dist-info").split("-")[1] if found else None


# ---------------------------------------------------------------------------------------------
# Running, measuring, reporting


def run_once(config: Configuration, root: Path, round_: int, steps: int) -> dict[str, Any]:
    """One training run in a fresh child, then its held-out loss in another."""
    folder = root / f"{config.name}-{round_}"
    folder.mkdir()
    for name in ("train.jsonl", "heldout.jsonl"):
        shutil.copy(root / name, folder / name)
    command = config.start(folder, steps)
    start = time.perf_counter()
    code, peak_kb = _run_child(command, folder, folder / "train.log")
    if code != 0:
        tail = (folder / "train.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{config.name} failed (exit {code}); log {folder / 'train.log'}:\n{tail}")
    result = config.collect(folder)
    (folder / "result.json").write_text(json.dumps(result))
    code, _ = _run_child(_bench_child("heldout", folder, 0), folder, folder / "heldout.log")
    if code != 0:
        raise SystemExit(f"held-out loss of {config.name} failed; log {folder / 'heldout.log'}")
    losses = result["losses"]
    return {
        **result,
        "tokens_per_s": result["tokens"] / result["seconds"],
        "peak_rss_gb": peak_kb / 1024**2,
        "final_loss": sum(losses[-3:]) / len(losses[-3:]),  # mean of the last 3 steps
        "heldout_loss": json.loads((folder / "heldout.json").read_text())["loss"],
        "wall_s": time.perf_counter() - start,
    }


def _run_child(command: list[str], cwd: Path, log: Path) -> tuple[int, int]:
    """Exit code and peak RSS (KiB, from wait4) of a child writing into `log`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("TUNEWRIGHT_CPU_BF16", None)  # overrides `auto`; the bench runs the defaults
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss


def heldout_loss(folder: Path) -> None:
    """Mean token loss over the answers of heldout.jsonl, for the adapter a run saved: the base
    in fp32, the adapter loaded on it, each row rendered by the model's chat template (its
    default system prompt included) and cut at the training length. Writes heldout.json."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunewright.chat import render_example
    from tunewright.models import load_tokenizer, resolve_model

    adapter = json.loads((folder / "result.json").read_text())["adapter"]
    base = resolve_model(MODEL)
    tokenizer = load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter).eval()
    total, count = 0.0, 0
    for row in _read_jsonl(folder / "heldout.jsonl"):
        messages = [
            {"role": "user", "content": row["instruction"]},
            {"role": "assistant", "content": row["output"]},
        ]
        rendered = render_example(tokenizer, messages, max_seq_len=MAX_LEN)
        ids, labels = torch.tensor([rendered.input_ids]), torch.tensor(rendered.labels)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        targets = labels[1:]
        mask = targets != -100
        loss = torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum")
        total, count = total + float(loss), count + int(mask.sum())
    (folder / "heldout.json").write_text(json.dumps({"loss": total / count, "tokens": count}))


def report(configs: list[Configuration], runs: dict[str, list[dict[str, Any]]]) -> None:
    header = (
        "| tool | setting | training-loop tokens/s (median) | per round | peak RSS | "
        "final loss | held-out loss |"
    )
    print(f"\n{header}\n|---|---|---|---|---|---|---|")
    for config in configs:
        done = runs[config.name]
        speeds = [r["tokens_per_s"] for r in done]
        note = done[-1].get("note")
        setting = f"{config.setting}; {note}" if note else config.setting
        print(
            f"| {config.tool} | {setting} | {statistics.median(speeds):.0f} | "
            f"{', '.join(f'{s:.0f}' for s in speeds)} | "
            f"{_median(done, 'peak_rss_gb'):.2f} GB | {_median(done, 'final_loss'):.3f} | "
            f"{_median(done, 'heldout_loss'):.4f} |"
        )
    tunewright = runs.get("tunewright")
    peers = [statistics.median(r["tokens_per_s"] for r in runs[n]) for n in runs if "llama" in n]
    if tunewright and peers:
        mine = statistics.median(r["tokens_per_s"] for r in tunewright)
        print(f"\nratio: {mine / max(peers):.2f}")
    else:
        print("\nratio: n/a (needs the tunewright run and at least one LLaMA-Factory run)")


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds (medians)")
    parser.add_argument("--only", help="comma-separated configurations to run (default: all)")
    parser.add_argument("--skip-llamafactory", action="store_true", help="leave LLaMA-Factory out")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # NAME FOLDER STEPS
    args = parser.parse_args()
    if args.child:
        return run_child(*args.child)

    name, flags = cpu_info()
    bf16 = has_native_bf16(flags)
    print(f"cpu: {name}, {os.cpu_count()} logical cores")
    print("flags: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FLAGS))
    configs = _chosen(configurations(bf16), args.only, args.skip_llamafactory)
    if any(c.name.startswith("llamafactory") for c in configs):
        ensure_llamafactory()
    from tunewright.models import resolve_model

    resolve_model(MODEL)  # converted into the cache once, before anything is timed
    root = Path(tempfile.mkdtemp(prefix="tw-train-bench-"))
    write_data(root)
    print(
        f"job: {MODEL}, {TRAIN_ROWS} rows, max length {MAX_LEN}, LoRA r{RANK}/alpha {ALPHA}/"
        f"dropout 0 all-linear, batch {BATCH}, lr {LR} linear, {args.steps} steps, seed {SEED}; "
        f"{args.rounds} rounds of {len(configs)} runs in {root}",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    for round_ in range(1, args.rounds + 1):
        for config in configs:
            result = run_once(config, root, round_, args.steps)
            runs[config.name].append(result)
            print(
                f"round {round_} {config.name}: {result['tokens_per_s']:.1f} tokens/s "
                f"({result['tokens']} tokens in {result['seconds']:.1f} s), "
                f"peak RSS {result['peak_rss_gb']:.2f} GB, final loss {result['final_loss']:.3f}, "
                f"held-out {result['heldout_loss']:.4f}; {result['wall_s']:.0f} s in all",
                flush=True,
            )
    report(configs, runs)


def _chosen(configs: list[Configuration], only: str | None, skip_lf: bool) -> list[Configuration]:
    names = [c.name for c in configs]
    wanted = [n.strip() for n in only.split(",")] if only else names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {names}")
    return [
        c
        for c in configs
        if c.name in wanted and not (skip_lf and c.name.startswith("llamafactory"))
    ]


def run_child(name: str, folder: str, steps: str) -> None:
    if name == "heldout":
        heldout_loss(Path(folder))
    else:
        train_trl(Path(folder), int(steps), fastest=name == "trl-fastest")


if __name__ == "__main__":
    main()
