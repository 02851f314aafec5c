"""Each preference objective trains a few steps on the tiny model through TRL's trainer, with
tunewright's own setup around it: the adapter changes, the rewards are logged to metrics.jsonl
and plotted, the manifest records the objective and its options, and a run resumes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.data.prepare import FeedbackDataError
from tunewright.files import read_jsonl
from tunewright.runs import data_split
from tunewright.training.args import training_arguments
from tunewright.training.defaults import resolve_hyper
from tunewright.training.preference import ObjectiveDataError
from tunewright.training.stage import build_job, run_job

TRAIN = {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "learning_rate": 0.01}


def pair_rows(n: int) -> list[dict]:
    return [
        {
            "prompt": f"What is {i} plus {i + 1}?",
            "chosen": f"{2 * i + 1}.",
            "rejected": f"I think it is {2 * i + 3}, or maybe {i} again.",
        }
        for i in range(n)
    ]


def feedback_rows(n: int) -> list[dict]:
    rows = []
    for row in pair_rows(n):
        good = len(rows) % 3 != 2  # two desirable for one undesirable: the weights must balance
        rows.append(
            {
                "prompt": row["prompt"],
                "completion": row["chosen" if good else "rejected"],
                "label": good,
            }
        )
    return rows


def adapter_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("objective", "rows"),
    [("dpo", pair_rows), ("orpo", pair_rows), ("simpo", pair_rows), ("kto", feedback_rows)],
)
def test_objective_trains_logs_rewards_and_records_its_options(
    tmp_path, tiny_model_dir, objective, rows
):
    path = make_project(
        tmp_path,
        model=tiny_model_dir,
        rows=rows(16),
        train={**TRAIN, "objective": objective, "lora": {"dropout": 0.0}},
    )
    config = load_config(path)
    job = build_job(config, console=None)
    # TRL's configs default to checkpointing on; the lever (off here) must decide
    hyper = resolve_hyper(config.train, job.n_params, len(job.train_features))
    args = training_arguments(
        config, hyper, tmp_path / "args", has_eval=True, args_class=job.args_class,
        objective=job.objective_args,
    )  # fmt: skip
    assert type(args) is job.args_class and args.activation_checkpointing is False
    before = adapter_weights(job.model)
    result = run_job(config, job)
    after = adapter_weights(job.model)
    assert any(not torch.equal(before[n], after[n]) for n in before), "the adapter did not move"
    assert (result.output_dir / "adapter_model.safetensors").is_file()

    stage = tmp_path / "runs" / "default" / "train"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["objective"] == objective
    assert manifest["metrics"]["steps"] == 2
    options = manifest["preference"]
    assert options["beta"]["value"] == (2.0 if objective == "simpo" else 0.1)
    assert options["beta"]["source"].startswith("auto")
    if objective == "kto":  # about two desirable answers per undesirable one in the train split
        labels = [r["label"] for r in read_jsonl(data_split(config, "train"))]
        good, bad = labels.count(True), labels.count(False)
        assert good > bad > 0
        assert options["undesirable_weight"]["value"] == pytest.approx(good / bad, rel=1e-3)
        assert options["desirable_weight"]["value"] == 1.0
    steps = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    logged = [e for e in steps if "loss" in e]
    assert len(logged) == 2 and all(torch.isfinite(torch.tensor(e["loss"])) for e in logged)
    assert any("rewards/chosen" in e or "rewards/chosen_sum" in e for e in logged), logged[0]
    assert (stage / "rewards.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("objective", "rows"),
    [("dpo", pair_rows), ("orpo", pair_rows), ("simpo", pair_rows), ("kto", feedback_rows)],
)
def test_objective_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, objective, rows):
    train = {**TRAIN, "objective": objective, "save_every": 1, "max_steps": 3}
    path = make_project(tmp_path, model=tiny_model_dir, rows=rows(12), train=train)
    config = load_config(path, ["train.max_steps=2"])
    run_job(config, build_job(config, console=None))
    config = load_config(path)
    run_job(config, build_job(config, console=None), resume=True)
    stage = tmp_path / "runs" / "default" / "train"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-2")
    assert manifest["metrics"]["steps"] == 3
    steps = [
        json.loads(line)["step"]
        for line in (stage / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert steps == [1, 2, 3]


def test_objectives_refuse_data_they_cannot_read(tmp_path, tiny_model_dir):
    chat = [
        {
            "messages": [
                {"role": "user", "content": f"hi {i}"},
                {"role": "assistant", "content": "yo"},
            ]
        }
        for i in range(8)
    ]
    path = make_project(
        tmp_path / "a", model=tiny_model_dir, rows=chat, train={**TRAIN, "objective": "dpo"}
    )
    with pytest.raises(ObjectiveDataError, match=r"dpo needs preference pairs.*chat"):
        build_job(load_config(path), console=None)
    path = make_project(
        tmp_path / "b",
        model=tiny_model_dir,
        rows=feedback_rows(8),
        train={**TRAIN, "objective": "orpo"},
    )
    with pytest.raises(ObjectiveDataError, match=r"orpo needs preference pairs.*feedback"):
        build_job(load_config(path), console=None)
    path = make_project(tmp_path / "c", model=tiny_model_dir, rows=feedback_rows(8), train=TRAIN)
    with pytest.raises(FeedbackDataError, match="objective sft would learn the undesirable") as e:
        build_job(load_config(path), console=None)
    assert "train.objective: kto" in e.value.hint


def test_validate_names_objectives_that_cannot_run(run_cli, tmp_path, tiny_model_dir):
    path = make_project(
        tmp_path,
        model=tiny_model_dir,
        rows=pair_rows(8),
        train={**TRAIN, "objective": "dpo", "method": "prefix"},
    )
    code, out, err = run_cli("validate", str(path))
    assert code == 1
    assert "train.objective: dpo does not run with train.method prefix" in " ".join(
        (out + err).split()
    )


def test_eval_scores_preference_accuracy_on_held_out_pairs(tmp_path, tiny_model_dir):
    from tunewright.evaluation.preference import pair_scores
    from tunewright.evaluation.stage import evaluate_run
    from tunewright.models import load_causal_lm, load_tokenizer

    path = make_project(
        tmp_path,
        model=tiny_model_dir,
        rows=pair_rows(20),
        train={**TRAIN, "objective": "dpo"},
        eval={"max_new_tokens": 4, "suites": [], "bootstrap_samples": 50},
    )
    config = load_config(path)
    run_job(config, build_job(config, console=None))
    results = evaluate_run(config, console=None)
    assert results["task"] == "preference" and results["primary_metric"] == "preference_accuracy"
    row = next(m for m in results["metrics"] if m["metric"] == "preference_accuracy")
    held_out = read_jsonl(data_split(config, "eval"))
    assert results["n_examples"] == len(held_out) > 0
    for side in ("base", "tuned"):
        assert 0.0 <= row[side] <= 1.0
        assert round(row[side] * len(held_out)) == pytest.approx(row[side] * len(held_out))
    # Swapping the answers of every pair turns each verdict around (no ties here).
    model = load_causal_lm(tiny_model_dir).eval()
    tokenizer = load_tokenizer(tiny_model_dir)
    swapped = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in held_out]
    straight = pair_scores(model, tokenizer, held_out, 256)
    assert [1.0 - s for s in straight] == pair_scores(model, tokenizer, swapped, 256)


def test_reference_free_dpo_skips_the_reference(tmp_path, tiny_model_dir):
    """With a reference, the first step's loss is exactly ln 2 (the fresh adapter is the
    reference); without, it is -log sigmoid(beta x the policy's own log-likelihood gap)."""
    losses = {}
    for free in (False, True):
        train = {
            **TRAIN, "objective": "dpo", "max_steps": 1,
            "preference": {"reference_free": free},
        }  # fmt: skip
        folder = tmp_path / str(free)
        config = load_config(
            make_project(folder, model=tiny_model_dir, rows=pair_rows(12), train=train)
        )
        run_job(config, build_job(config, console=None))
        stage = folder / "runs" / "default" / "train"
        entry = next(e for e in read_jsonl(stage / "metrics.jsonl") if "loss" in e)
        losses[free] = entry["loss"]
        manifest = json.loads((stage / "manifest.json").read_text())
        assert manifest["preference"]["reference_free"]["value"] is free
    assert losses[False] == pytest.approx(0.6931, abs=1e-3)
    assert abs(losses[True] - 0.6931) > 1e-3, losses


def test_reference_free_is_refused_off_dpo(run_cli, tmp_path, tiny_model_dir):
    path = make_project(
        tmp_path, model=tiny_model_dir, rows=pair_rows(8),
        train={**TRAIN, "objective": "orpo", "preference": {"reference_free": True}},
    )  # fmt: skip
    code, out, err = run_cli("validate", str(path))
    assert code == 1
    assert "train.preference.reference_free: applies to train.objective dpo" in " ".join(
        (out + err).split()
    )


@pytest.mark.parametrize("method", ["full", "dora", "qlora", "ia3"])
def test_dpo_trains_with_every_method(tmp_path, tiny_model_dir, method):
    train = {**TRAIN, "objective": "dpo", "method": method}
    config = load_config(
        make_project(tmp_path, model=tiny_model_dir, rows=pair_rows(12), train=train)
    )
    job = build_job(config, console=None)
    before = adapter_weights(job.model)
    result = run_job(config, job)
    after = adapter_weights(job.model)
    assert any(not torch.equal(before[n], after[n]) for n in before), method
    assert result.metrics["steps"] == 2
    assert all(
        math.isfinite(e["loss"])
        for e in read_jsonl(result.output_dir.parent / "metrics.jsonl")
        if "loss" in e
    )
