"""The `auto` schedule: a small dataset gets enough optimizer steps; large ones keep the table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from tunewright.config import load_config
from tunewright.training.defaults import (
    MAX_EPOCHS,
    MIN_STEPS,
    resolve_hyper,
    steps_per_epoch,
)

SMALL = 135_000_000  # SmolLM2-135M: batch 8 x 2 accumulation, 3 epochs (+2 under 500 rows)


def test_small_data_gets_epochs_until_the_minimum_steps():
    config = load_config(None, [])
    hyper = resolve_hyper(config.train, SMALL, 81)  # the identity example's training rows
    per_epoch = steps_per_epoch(81, 8, 2)
    assert per_epoch == 6  # 11 batches of 8, stepped every 2
    assert hyper.epochs * per_epoch >= MIN_STEPS > (hyper.epochs - 1) * per_epoch
    assert hyper.sources["epochs"] == (
        f"auto: raised from 5 to reach {MIN_STEPS} optimizer steps (6 per epoch)"
    )


def test_large_data_keeps_the_table():
    config = load_config(None, [])
    hyper = resolve_hyper(config.train, SMALL, 20_000)
    assert hyper.epochs == 2 and hyper.sources["epochs"] == "auto"  # 3 - 1 over 5000 rows


def test_tiny_data_is_capped_and_says_so():
    hyper = resolve_hyper(load_config(None, []).train, SMALL, 10)  # 1 step per epoch
    assert hyper.epochs == MAX_EPOCHS
    assert hyper.sources["epochs"] == (
        f"auto: raised from 5 to the cap of {MAX_EPOCHS}, {MAX_EPOCHS} of the {MIN_STEPS} "
        "optimizer steps wanted (1 per epoch)"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.epochs=2"],
        ["train.max_steps=10"],
        ["train.objective=grpo", "train.rewards=[{type: exact_match}]"],
    ],
)
def test_set_epochs_max_steps_and_grpo_are_left_alone(overrides):
    hyper = resolve_hyper(load_config(None, overrides).train, SMALL, 81)
    assert hyper.epochs == (2 if "train.epochs=2" in overrides else 5)


def test_steps_per_epoch_split_across_processes():
    # 100 rows over 2 processes: 50 each, 7 batches of 8, one step per batch
    assert steps_per_epoch(100, 8, 1, processes=2) == 7


def test_short_epochs_are_evaluated_twice_and_checkpointed_alike():
    hyper = resolve_hyper(load_config(None, []).train, SMALL, 81)  # 6 steps per epoch
    assert (hyper.eval_every, hyper.save_every) == (3, 3)
    assert hyper.sources["eval_every"] == "auto: 2 evaluations per 6-step epoch"


@pytest.mark.parametrize(
    ("n_examples", "overrides", "expected"),
    [
        (20_000, [], ("epoch", "epoch")),  # long epochs: once each
        (81, ["train.max_steps=10"], ("epoch", "epoch")),  # the user fixed the length
        (81, ["train.eval_every=4"], (4, 4)),
        (81, ["train.save_every=epoch"], (3, "epoch")),
    ],
)
def test_long_epochs_and_set_values_keep_their_schedule(n_examples, overrides, expected):
    hyper = resolve_hyper(load_config(None, overrides).train, SMALL, n_examples)
    assert (hyper.eval_every, hyper.save_every) == expected


def test_identity_example_sets_only_model_data_and_method():
    folder = Path(__file__).resolve().parents[3] / "examples" / "identity"
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    assert raw == {
        "model": {"name": "smollm2-135m-instruct"},
        "data": {"train": "identity.jsonl"},
        "train": {"method": "lora"},
    }
    spec = importlib.util.spec_from_file_location("make_identity", folder / "make_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [json.loads(line) for line in (folder / "identity.jsonl").read_text().splitlines()]
    assert rows == module.make_rows() and len(rows) <= 100  # the shipped file is the script's
    config = load_config(folder / "config.yaml")
    hyper = resolve_hyper(config.train, SMALL, 81)  # 90 rows less the 10% held out
    assert hyper.epochs * steps_per_epoch(81, hyper.batch_size, hyper.grad_accum) >= MIN_STEPS
