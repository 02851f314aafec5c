"""The rewards of a `train.objective: grpo` run as eval metrics: the graders of `train.rewards`
score the base and tuned models' generated answers to the held-out prompts, each against the
example's reference answer, and each grader's mean and the weighted total (`reward`, what GRPO
maximises and the primary metric under `eval.primary_metric: auto`) are compared with the
paired statistics every other metric gets: McNemar for the right/wrong graders (exact_match,
regex, json_parses, json_schema), Wilcoxon or the sign test for the rest and the total."""

from __future__ import annotations

from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record
from tunewright.training.rewards import BINARY_KINDS, Grader, RewardError, grade, total_reward

TOTAL = "reward"


def compare_rewards(
    outputs: dict[str, list[str]], records: list[Record], config: Config
) -> list[dict[str, Any]]:
    """Rows of the report, the total first, then `reward/<name>` per grader."""
    from tunewright.evaluation.stats import compare
    from tunewright.training.grpo import grpo_rows
    from tunewright.training.rewards import build_graders

    graders = build_graders(config)
    # the prompts and references as training handed them to the graders
    rows = grpo_rows(records, "the eval examples")
    scores = {which: _scores(graders, outputs[which], rows, which) for which in outputs}
    columns: list[tuple[str, Any, bool, bool]] = [
        (TOTAL, lambda per_grader: total_reward(graders, per_grader), False, True)
    ]
    for i, grader in enumerate(graders):
        # a negative weight penalises: less of that grader's score is the better answer
        columns.append(
            (f"{TOTAL}/{grader.name}", _column(i), grader.kind in BINARY_KINDS, grader.weight >= 0)
        )
    rows = []
    for name, pick, binary, higher in columns:
        per_example = {w: [pick(example) for example in scores[w]] for w in ("base", "tuned")}
        comparison = compare(
            name,
            per_example["base"],
            per_example["tuned"],
            _mean(per_example["base"]),
            _mean(per_example["tuned"]),
            binary=binary,
            higher_is_better=higher,
            samples=config.eval.bootstrap_samples,
            seed=config.seed,
        )
        rows.append({**comparison.as_dict(), "higher_is_better": higher})
    return rows


def _scores(
    graders: list[Grader], answers: list[str], rows: list[dict[str, Any]], which: str
) -> list[list[float]]:
    """Each example's score from each grader; a grader that fails names the example."""
    table = []
    for answer, example in zip(answers, rows, strict=True):
        scores = []
        for grader in graders:
            try:
                scores.append(grade(grader, answer, example["reference"], example["prompt"]))
            except ValueError as exc:
                raise RewardError(
                    f"{grader.label} {exc} on the {which} model's answer to {example['source']}",
                    hint="Fix the grader so it returns a number for any answer, then run eval "
                    "again.",
                ) from exc.__cause__
        table.append(scores)
    return table


def _column(index: int) -> Any:
    return lambda per_grader: per_grader[index]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
