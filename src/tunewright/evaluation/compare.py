"""Scoring both sides: one metric compared with paired statistics, the per-example table, and
the training summary the reports show. Shared by the causal and encoder evaluations."""

from __future__ import annotations

from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record
from tunewright.runs import TRAIN, read_manifest, stage_dir


def compare_metric(
    name: str, outputs: dict[str, list[str]], references: list[str], config: Config
) -> dict[str, Any]:
    from tunewright.evaluation.metrics import (
        corpus_scorer,
        example_scores,
        higher_is_better,
        is_binary,
    )
    from tunewright.evaluation.stats import compare

    # Each side's corpus scorer is built once; a bootstrap resample only re-adds statistics.
    scorers = {w: corpus_scorer(name, outputs[w], references) for w in ("base", "tuned")}
    everything = list(range(len(references)))
    comparison = compare(
        name,
        example_scores(name, outputs["base"], references),
        example_scores(name, outputs["tuned"], references),
        scorers["base"](everything),
        scorers["tuned"](everything),
        binary=is_binary(name),
        corpus_fn=lambda indices, which: scorers[which](indices),
        higher_is_better=higher_is_better(name),
        samples=config.eval.bootstrap_samples,
        seed=config.seed,
    )
    return {**comparison.as_dict(), "higher_is_better": higher_is_better(name)}


def examples_table(
    records: list[Record],
    prompts: list,
    references: list[str],
    outputs: dict[str, list[str]],
    primary: str,
) -> list[dict[str, Any]]:
    from tunewright.evaluation.metrics import METRICS, example_scores

    if primary not in METRICS:  # scored from likelihoods (loss, preference accuracy): no text
        primary = "exact_match"
    base = example_scores(primary, outputs["base"], references)
    tuned = example_scores(primary, outputs["tuned"], references)
    return [
        {
            "index": i,
            "source": f"{r['source']['file']}:{r['source']['line']}",
            "prompt": "\n\n".join(f"[{m['role']}] {m['content']}" for m in prompts[i]),
            "reference": references[i],
            "base": outputs["base"][i],
            "tuned": outputs["tuned"][i],
            "score_base": base[i],
            "score_tuned": tuned[i],
            "delta": tuned[i] - base[i],
        }
        for i, r in enumerate(records)
    ]


def train_summary(config: Config) -> dict[str, Any] | None:
    manifest = read_manifest(stage_dir(config, TRAIN))
    return manifest.get("metrics") if manifest else None
