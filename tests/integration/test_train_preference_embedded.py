"""DPO on the real embedded model: at the first step the policy is its own reference (the
adapter starts at zero, and the reference is the base with the adapter off), so the loss is
exactly ln 2; two more steps on other pairs of the same kind push it below."""

from __future__ import annotations

import json
import math

import pytest
from tests.support.projects import make_project

from tunewright.config import load_config
from tunewright.training.stage import train_model

pytestmark = pytest.mark.slow

TOPICS = [
    "tea",
    "rain",
    "bicycles",
    "maps",
    "bread",
    "owls",
    "rivers",
    "chess",
    "lamps",
    "kites",
    "clocks",
    "ferns",
    "boats",
    "drums",
    "glaciers",
    "violins",
]


def rows() -> list[dict]:
    return [
        {
            "prompt": f"Tell me about {topic}.",
            "chosen": f"{topic.capitalize()} are worth a look.",
            "rejected": f"Well, there is a lot to say about {topic}. First of all, many people "
            f"have opinions about {topic}, and honestly it depends on who you ask.",
        }
        for topic in TOPICS
    ]


def test_dpo_on_smollm2_starts_at_ln2_and_learns_the_pairs(tmp_path):
    path = make_project(
        tmp_path,
        model="smollm2-135m-instruct",
        rows=rows(),
        train={
            "objective": "dpo",
            "max_steps": 3,
            "batch_size": 2,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.0,
        },
    )
    result = train_model(load_config(path))
    stage = tmp_path / "runs" / "default" / "train"
    steps = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in steps if "loss" in e]
    assert len(losses) == 3
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)
    assert losses[-1] < losses[0] - 0.05, losses
    assert result.metrics["steps"] == 3
