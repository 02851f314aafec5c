"""`train.objective: grpo` trains a few steps on the tiny model through TRL's GRPOTrainer with
graders from the config (built-in and a python one from this module): the adapter changes, the
options and rewards reach the manifest, metrics.jsonl and rewards.png, and the eval stage scores
the rewards of base and tuned answers. A grader that raises is refused with the example's
file:line, before training or during it."""

from __future__ import annotations

import json

import pytest
import torch
from tests.support.projects import make_project, write_jsonl

from tunewright.config import load_config
from tunewright.training.rewards import RewardError
from tunewright.training.stage import build_job, run_job

TRAIN = {
    "objective": "grpo",
    "max_steps": 2,
    "batch_size": 2,
    "grad_accum": 1,
    "learning_rate": 0.01,
    "lora": {"dropout": 0.0},
    "grpo": {"num_generations": 2, "max_completion_length": 8},
}
REWARDS = [
    {"type": "exact_match"},
    {"type": "regex", "pattern": r"^\s*\d+", "weight": 0.5},
    {"python": f"{__name__}:brevity"},
]
GRPO_EVAL = {"max_new_tokens": 4, "suites": [], "bootstrap_samples": 50}


def brevity(completion: str, reference: str | None, prompt: list[dict]) -> float:
    """Sampled answers differ in length, so every group has rewards to compare."""
    assert prompt[-1]["role"] == "user" and reference is not None
    return 1.0 / (1 + len(completion))


def fails_on_seven(completion: str, reference: str | None, prompt: list[dict]) -> float:
    if "7" in (reference or ""):
        raise ValueError("no sevens")
    return 0.0


def only_references(completion: str, reference: str | None, prompt: list[dict]) -> float:
    """Passes the check on the reference answers, raises on anything the model writes."""
    if completion != reference:
        raise KeyError("not the reference")
    return 1.0


def sum_rows(n: int) -> list[dict]:
    return [
        {"instruction": f"What is {i} plus {i + 1}?", "output": str(2 * i + 1)} for i in range(n)
    ]


def adapter_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_grpo_trains_logs_each_reward_and_eval_scores_them(tmp_path, tiny_model_dir):
    from tunewright.evaluation.stage import evaluate_run

    path = make_project(
        tmp_path,
        model=tiny_model_dir,
        rows=sum_rows(16),
        train={**TRAIN, "rewards": REWARDS},
        eval=GRPO_EVAL,
    )
    config = load_config(path)
    job = build_job(config, console=None)
    before = adapter_weights(job.model)
    result = run_job(config, job)
    after = adapter_weights(job.model)
    assert any(not torch.equal(before[n], after[n]) for n in before), "the adapter did not move"
    # The KL term's reference is the adapter switched off: no copy is trained or saved.
    assert not any(".ref." in n for n, _ in job.model.named_parameters())
    assert sorted(p.name for p in result.output_dir.iterdir() if p.is_dir()) == []

    stage = tmp_path / "runs" / "default" / "train"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["objective"] == "grpo" and manifest["metrics"]["steps"] == 2
    options = manifest["grpo"]
    assert options["num_generations"] == {"value": 2, "source": "config"}
    assert options["max_completion_length"] == {"value": 8, "source": "config"}
    assert options["beta"]["value"] == 0.04 and options["beta"]["source"].startswith("auto")
    assert [(r["name"], r["weight"]) for r in manifest["rewards"]] == [
        ("exact_match", 1.0),
        ("regex", 0.5),
        ("brevity", 1.0),
    ]
    logged = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in logged if "loss" in e]
    assert len(steps) == 2
    for entry in steps:
        means = [entry[f"rewards/{n}/mean"] for n in ("exact_match", "regex", "brevity")]
        assert 0 < means[2] <= 1 and all(0 <= m <= 1 for m in means[:2])
        # TRL's `reward` is the weighted total of the graders' means
        assert entry["reward"] == pytest.approx(means[0] + 0.5 * means[1] + means[2], abs=1e-5)
    assert (stage / "rewards.png").stat().st_size > 1000

    results = evaluate_run(config, console=None)
    assert results["primary_metric"] == "reward"
    rows = {m["metric"]: m for m in results["metrics"]}
    for name in ("reward", "reward/exact_match", "reward/regex", "reward/brevity"):
        assert name in rows and rows[name]["higher_is_better"]
    assert rows["reward/exact_match"]["test"] == "mcnemar"
    assert rows["reward"]["test"] in ("wilcoxon", "sign")
    for side in ("base", "tuned"):  # the total is the weighted sum of the graders' means
        parts = [rows[f"reward/{n}"][side] for n in ("exact_match", "regex", "brevity")]
        assert rows["reward"][side] == pytest.approx(parts[0] + 0.5 * parts[1] + parts[2])
    assert results["verdict"] == rows["reward"]["verdict"]


def test_a_grader_that_raises_is_refused_before_training_with_the_example(tmp_path, tiny_model_dir):
    rewards = [{"type": "similarity"}, {"python": f"{__name__}:fails_on_seven"}]
    write_jsonl(tmp_path / "eval.jsonl", sum_rows(20)[16:])
    path = make_project(
        tmp_path,
        model=tiny_model_dir,
        rows=sum_rows(16),
        data={"eval": "eval.jsonl"},
        train={**TRAIN, "rewards": rewards},
    )
    with pytest.raises(RewardError) as caught:
        build_job(load_config(path), console=None)
    message = " ".join(caught.value.message.split())
    assert "train.rewards[1] (fails_on_seven)" in message
    # the answers 7, 17 and 27 are on lines 4, 9 and 14
    for line in (4, 9, 14):
        assert f"{tmp_path / 'train.jsonl'}:{line}: raised ValueError: no sevens" in message
    assert "train.rewards[0]" not in message  # chrF scored every reference


def test_a_grader_that_raises_during_training_stops_naming_it_and_the_example(
    tmp_path, tiny_model_dir
):
    rewards = [{"python": f"{__name__}:only_references"}]
    train = {**TRAIN, "rewards": rewards, "max_steps": 1}
    path = make_project(tmp_path, model=tiny_model_dir, rows=sum_rows(8), train=train)
    config = load_config(path)
    job = build_job(config, console=None)  # every reference answer passes
    with pytest.raises(RewardError) as caught:
        run_job(config, job)
    message = caught.value.message
    assert "train.rewards[0] (only_references) raised KeyError" in message
    assert "train.jsonl:" in message and "during training" in message


def test_validate_names_grader_problems_by_key(run_cli, tmp_path, tiny_model_dir):
    rewards = [
        {"type": "exact_match"},
        {"type": "regex", "pattern": "(unclosed"},
        {"type": "length_penalty"},
    ]
    path = make_project(
        tmp_path / "a", model=tiny_model_dir, rows=sum_rows(8), train={**TRAIN, "rewards": rewards}
    )
    code, out, err = run_cli("validate", str(path))
    text = " ".join((out + err).split())
    assert code == 1
    assert "train.rewards[1].pattern: not a valid regular expression" in text
    assert "train.rewards[2].max_words: is required" in text

    path = make_project(tmp_path / "b", model=tiny_model_dir, rows=sum_rows(8), train=TRAIN)
    code, out, err = run_cli("validate", str(path))
    assert code == 1
    assert "train.rewards: train.objective grpo needs at least one grader" in " ".join(
        (out + err).split()
    )

    rewards = [
        {"python": "no_such_module_here:score"},
        {"type": "json_schema", "schema": "schemas/missing.json"},
        {"python": f"{__name__}:nothing_by_this_name"},
    ]
    path = make_project(
        tmp_path / "c", model=tiny_model_dir, rows=sum_rows(8), train={**TRAIN, "rewards": rewards}
    )
    code, out, err = run_cli("validate", str(path))
    text = " ".join((out + err).split())
    assert code == 1
    assert "train.rewards[0]: python: cannot import no_such_module_here" in text
    assert "train.rewards[1]: schema: cannot read" in text
    assert "train.rewards[2]: python:" in text and "has no function nothing_by_this_name" in text


def test_grpo_resumes_from_its_checkpoint(tmp_path, tiny_model_dir):
    train = {**TRAIN, "rewards": REWARDS[2:], "save_every": 1, "max_steps": 2}
    path = make_project(tmp_path, model=tiny_model_dir, rows=sum_rows(8), train=train)
    config = load_config(path, ["train.max_steps=1"])
    run_job(config, build_job(config, console=None))
    config = load_config(path)
    run_job(config, build_job(config, console=None), resume=True)
    stage = tmp_path / "runs" / "default" / "train"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-1")
    assert manifest["metrics"]["steps"] == 2
    logged = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logged if "rewards/brevity/mean" in e] == [1, 2]
