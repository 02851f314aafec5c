"""The evaluation stage: the tuned model against its base on identical held-out prompts.

Read top to bottom: pick the examples, load base and tuned (one model with the adapter switched
off and on, or two folders), generate with the same decoding settings, score every metric per
example, compare with paired statistics, score the multiple-choice suites, write metrics.json and
the reports, and apply the gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.data.records import Record, expected_answer, prompt_messages
from tunewright.errors import TunewrightError
from tunewright.evaluation.compare import compare_metric, examples_table, train_summary
from tunewright.evaluation.gate import gate_checks
from tunewright.evaluation.selection import left_out_note, select_examples
from tunewright.evaluation.slices import slice_results
from tunewright.files import atomic_write_json, read_jsonl
from tunewright.generate import Decoding, generate
from tunewright.runs import (
    DATA,
    EVAL,
    TRAIN,
    data_split,
    loss_plot,
    read_manifest,
    stage_dir,
    stage_run,
    trained_output,
)

STAGE = EVAL


class EvalGateError(TunewrightError):
    """A check of `eval.gate` (or `eval.require_improvement`) failed."""


@dataclass
class Models:
    """Base and tuned model behind one interface: `use(which)` returns the model to call."""

    tuned: Any
    base: Any | None  # None: the tuned model is a PEFT model whose adapter is switched off
    tokenizer: Any
    description: dict[str, str]

    def run(self, which: str, fn: Any) -> Any:
        if which == "tuned" or self.base is not None:
            return fn(self.tuned if which == "tuned" else self.base)
        with self.tuned.disable_adapter():
            return fn(self.tuned)


def evaluate_run(
    config: Config,
    *,
    data_file: Path | None = None,
    console: Console | None = None,
    checkpoints: bool = False,
) -> dict[str, Any]:
    """Evaluate `<run>/train/`'s result against the base model; writes `<run>/eval/`.
    `checkpoints`: also every kept checkpoint, for the checkpoint curve."""
    from tunewright.evaluation.diagnosis import diagnose_run
    from tunewright.evaluation.report import write_reports

    console = console or Console(stderr=True)
    tuned_dir = _trained_output(config)
    records, inputs = _eval_records(config, data_file)
    records, selection = select_examples(records, config.eval.max_examples)
    note = left_out_note(selection)
    if note:
        console.print(f"[bold]eval[/bold]: {note}")
    labels = (read_manifest(stage_dir(config, TRAIN)) or {}).get("labels")
    if config.eval.judge is not None and not labels:  # fail before generating anything
        from tunewright.evaluation.judge import check_judge

        check_judge(config.eval.judge)
    with stage_run(config, STAGE, inputs=[*inputs, tuned_dir]) as run:
        if labels:  # an encoder with a classification head
            from tunewright.evaluation.encoder import evaluate_encoder

            if checkpoints:
                console.print("[bold]eval[/bold]: --checkpoints is for causal LMs; skipped")

            results = evaluate_encoder(config, tuned_dir, records, labels)
        else:
            results = _evaluate(config, _load_models(config, tuned_dir), records, console)
            if checkpoints:
                from tunewright.evaluation.checkpoints import checkpoint_curve

                results["checkpoints"] = checkpoint_curve(config, records, results, console)
        results["selection"] = selection
        results["diagnosis"] = diagnose_run(config, results)
        results["gate"] = gate_checks(config, results)
        atomic_write_json(run.output("metrics.json"), results)
        loss_png = loss_plot(config)
        for name in write_reports(results, run.dir, loss_png if loss_png.is_file() else None):
            run.output(name)
        run.extra.update(
            {
                "verdict": results["verdict"],
                "primary_metric": results["primary_metric"],
                "n_examples": results["n_examples"],
                "diagnosis": results["diagnosis"],
            }
        )
    if not results["gate"]["passed"]:
        raise EvalGateError(
            "; ".join(results["gate"]["failures"]), hint=f"See {run.dir / 'report.html'}."
        )
    return results


# ---------------------------------------------------------------------------------------------
# Inputs


def _eval_records(config: Config, data_file: Path | None) -> tuple[list[Record], list[Path]]:
    if data_file is not None:
        from tunewright.data.prepare import load_side

        loaded = load_side(config, [str(data_file)], "eval")
        if loaded.rejected:
            first = loaded.rejected[0]
            raise TunewrightError(
                f"{len(loaded.rejected)} rows of {data_file} cannot be read, first "
                f"{first['source']}: {first['reason']}",
                hint=f"Check it with `tunewright data validate {data_file}`.",
            )
        records, inputs = loaded.records, loaded.inputs
    else:
        path = data_split(config, "eval")
        if read_manifest(stage_dir(config, DATA)) is None or not path.is_file():
            raise TunewrightError(
                f"no prepared eval data in {path.parent}",
                hint="Run `tunewright data prepare` (or train) first, or pass --data FILE.",
            )
        records, inputs = read_jsonl(path), [path]
    return records, inputs


def _trained_output(config: Config) -> Path:
    trained = trained_output(config)
    if trained is None:
        raise TunewrightError(
            f"no trained model in {stage_dir(config, TRAIN)}",
            hint="Run `tunewright train CONFIG` first.",
        )
    return trained


def _load_models(config: Config, tuned_dir: Path) -> Models:
    from tunewright.models import load_causal_lm, load_tokenizer, resolve_model

    base_dir = resolve_model(config.model.name)
    tokenizer = load_tokenizer(tuned_dir)  # carries the chat template used in training
    description = {"base": config.model.name, "tuned": str(tuned_dir)}

    def load(folder: Path) -> Any:
        return load_causal_lm(folder, config.model.dtype, config.model.attn_implementation)

    if tuned_dir.name == "model":
        return Models(load(tuned_dir).eval(), load(base_dir).eval(), tokenizer, description)
    from peft import PeftModel

    tuned = PeftModel.from_pretrained(load(base_dir), tuned_dir).eval()
    return Models(tuned, None, tokenizer, description)


# ---------------------------------------------------------------------------------------------
# Scoring


def _evaluate(config: Config, models: Models, records: list[Record], console: Console) -> dict:
    from tunewright.evaluation.metrics import select_metrics

    task = records[0]["task"]
    names, primary = select_metrics(config.eval.metrics, config.eval.primary_metric, task)
    with_loss = config.eval.metrics == "auto" or "loss" in config.eval.metrics
    decoding = Decoding(max_new_tokens=config.eval.max_new_tokens, seed=config.seed)
    prompts = [prompt_messages(r) for r in records]
    references = [expected_answer(r) or "" for r in records]
    reason = "config: eval.primary_metric"
    chosen = None
    if config.eval.primary_metric == "auto":
        from tunewright.evaluation.primary import choose_primary

        chosen = choose_primary(references, names, task)
        primary, reason = chosen.metric, chosen.reason
    outputs = {
        which: _generate(models, which, prompts, decoding, config, console)
        for which in ("base", "tuned")
    }
    comparisons = [compare_metric(name, outputs, references, config) for name in names]
    if with_loss:
        comparisons += _compare_loss(models, records, config)
    if task == "preference":
        from tunewright.evaluation.preference import METRIC, compare_preference_accuracy

        comparisons.insert(0, compare_preference_accuracy(models, records, config))
        if config.eval.primary_metric == "auto":
            primary = METRIC  # what a preference objective trains for
            reason = "auto: what a preference objective trains for"
    if config.train.objective == "grpo":
        from tunewright.evaluation.rewards import TOTAL, compare_rewards

        comparisons[:0] = compare_rewards(outputs, records, config)
        if config.eval.primary_metric == "auto":
            primary = TOTAL  # the weighted reward grpo maximises
            reason = "auto: the weighted reward grpo maximises"
    judged = None
    if config.eval.judge is not None:
        judged = _judge(config, task, prompts, references, outputs, console)
        comparisons += judged["metrics"]
        if chosen is not None and primary == chosen.metric:  # not the objective's own metric
            from tunewright.evaluation.judge import METRIC as JUDGE_METRIC
            from tunewright.evaluation.primary import with_judge

            chosen = with_judge(chosen, JUDGE_METRIC, config.eval.judge.model)
            primary, reason = chosen.metric, chosen.reason
    by_name = {c["metric"]: c for c in comparisons}
    if primary not in by_name:
        raise TunewrightError(
            f"eval.primary_metric: '{primary}' is not among the metrics "
            f"evaluated ({', '.join(by_name)})"
        )
    results = {
        "run": config.name,
        "task": task,
        "n_examples": len(records),
        "models": models.description,
        "decoding": {
            "max_new_tokens": decoding.max_new_tokens,
            "do_sample": False,
            "batch_size": config.eval.batch_size,
        },
        "primary_metric": primary,
        "primary_reason": reason,
        "verdict": by_name[primary]["verdict"],
        "metrics": comparisons,
        "examples": examples_table(records, prompts, references, outputs, primary),
        "train": train_summary(config),
        **slice_results(records, outputs, references, primary, names, config),
    }
    if judged is not None:
        from tunewright.evaluation.judge import consistency_warning

        results["judge"] = {k: v for k, v in judged.items() if k != "metrics"}
        if warning := consistency_warning(judged):
            results.setdefault("warnings", []).append(warning)
    if config.eval.suites:
        from tunewright.evaluation.suites import compare_suites

        results["suites"] = compare_suites(models, config, console)
    return results


def _judge(
    config: Config,
    task: str,
    prompts: list,
    references: list[str],
    outputs: dict[str, list[str]],
    console: Console,
) -> dict[str, Any]:
    from tunewright.evaluation.judge import judge_outputs
    from tunewright.runs import judge_cache

    assert config.eval.judge is not None
    return judge_outputs(
        config.eval.judge,
        task,
        prompts,
        references,
        outputs,
        judge_cache(config),
        console,
        samples=config.eval.bootstrap_samples,
        seed=config.seed,
    )


def _generate(
    models: Models, which: str, prompts: list, decoding: Decoding, config: Config, console: Console
) -> list[str]:
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"generating ({which})", total=len(prompts))
        return models.run(
            which,
            lambda model: generate(
                model,
                models.tokenizer,
                prompts,
                decoding,
                config.eval.batch_size,
                on_batch=lambda n: progress.advance(task, n),
            ),
        )


def _compare_loss(models: Models, records: list[Record], config: Config) -> list[dict]:
    from tunewright.evaluation.loss import example_losses, mean_loss
    from tunewright.evaluation.stats import compare

    conversations = [
        [*prompt_messages(r), {"role": "assistant", "content": expected_answer(r)}] for r in records
    ]
    pairs = {
        which: models.run(
            which,
            lambda model: example_losses(
                model, models.tokenizer, conversations, config.data.max_seq_len
            ),
        )
        for which in ("base", "tuned")
    }
    per_example = {w: [s / n if n else 0.0 for s, n in p] for w, p in pairs.items()}
    rows = []
    for name, transform in (("loss", lambda x: x), ("perplexity", math.exp)):

        def corpus(indices: Any, which: str, transform: Any = transform) -> float:
            return transform(mean_loss([pairs[which][i] for i in indices]))

        comparison = compare(
            name,
            per_example["base"],
            per_example["tuned"],
            transform(mean_loss(pairs["base"])),
            transform(mean_loss(pairs["tuned"])),
            binary=False,
            corpus_fn=corpus,
            higher_is_better=False,
            samples=config.eval.bootstrap_samples,
            seed=config.seed,
        )
        rows.append({**comparison.as_dict(), "higher_is_better": False})
    return rows
