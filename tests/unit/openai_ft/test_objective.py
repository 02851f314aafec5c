"""train.objective and train.preference on the OpenAI backend: which OpenAI method and
hyperparameters a config becomes, and what is refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewright.cli import preflight_problems
from tunewright.config import Config, load_config
from tunewright.errors import ConfigError, TunewrightError
from tunewright.openai_ft.submit import job_request, openai_method

FILES = {"train": {"id": "file-train"}, "validation": {"id": "file-eval"}}


def openai_config(**train: object) -> Config:
    return Config.model_validate({"train": {"backend": "openai", **train}})


def sent_method(config: Config) -> dict:
    return job_request(config, config.openai, FILES)["method"]


def test_sft_is_openais_supervised_method_without_beta():
    method = sent_method(openai_config())
    assert method == {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {
                "n_epochs": "auto",
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
            }
        },
    }


def test_dpo_sends_train_preference_beta_and_leaves_auto_to_openai():
    method = sent_method(openai_config(objective="dpo", preference={"beta": 0.3}))
    assert method["type"] == "dpo" and set(method) == {"type", "dpo"}
    assert method["dpo"]["hyperparameters"]["beta"] == 0.3
    assert "beta" not in sent_method(openai_config(objective="dpo"))["dpo"]["hyperparameters"]


def test_validate_allows_dpo_and_refuses_what_openai_has_no_method_for(tmp_path: Path):
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("{}\n")

    def problems(**train: object) -> list[str]:
        config = Config.model_validate(
            {"data": {"train": str(train_file)}, "train": {"backend": "openai", **train}}
        )
        return preflight_problems(config)

    assert problems(objective="dpo") == []
    for objective in ("orpo", "simpo", "kto"):
        (problem,) = problems(objective=objective)
        assert problem.startswith(f"train.objective: {objective} has no OpenAI fine-tuning method")
        assert (
            "supervised (train.objective: sft), dpo (train.objective: dpo) and reinforcement "
            "(train.objective: grpo)"
        ) in problem
        assert f"train.backend: local to train {objective} here" in problem
    # The same objectives run locally: the refusal belongs to the backend.
    assert problems(objective="orpo", backend="local") == []
    (problem,) = problems(objective="dpo", preference={"loss_type": "hinge"})
    assert problem.startswith("train.preference.loss_type: OpenAI's DPO has the sigmoid loss")


def test_preference_options_openais_dpo_lacks_are_refused_not_dropped():
    config = openai_config(
        objective="dpo", preference={"beta": 2.5, "loss_type": "ipo", "label_smoothing": 0.1}
    )
    with pytest.raises(TunewrightError) as info:
        openai_method(config)
    message = info.value.message
    assert "train.preference.beta: OpenAI's DPO takes at most 2.0 (got 2.5)" in message
    assert "train.preference.loss_type: OpenAI's DPO has the sigmoid loss only" in message
    assert "train.preference.label_smoothing: OpenAI's DPO has none" in message
    # sigmoid is what OpenAI runs, and sft ignores train.preference as local training does
    assert (
        openai_method(openai_config(objective="dpo", preference={"loss_type": "sigmoid"})) == "dpo"
    )
    assert openai_method(openai_config(preference={"loss_type": "ipo"})) == "supervised"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("openai:\n  method: dpo\n", "openai.method: replaced; use train.objective: dpo"),
        ("openai:\n  method: supervised\n", "openai.method: replaced; use train.objective: sft"),
        ("openai:\n  method: rl\n", "openai.method: replaced; use train.objective"),
        (
            "openai:\n  hyperparameters:\n    beta: 0.2\n",
            "openai.hyperparameters.beta: replaced; use train.preference.beta: 0.2",
        ),
    ],
)
def test_the_old_keys_fail_with_what_to_use(tmp_path: Path, section: str, expected: str):
    path = tmp_path / "config.yaml"
    path.write_text("train:\n  backend: openai\n" + section)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [expected]
