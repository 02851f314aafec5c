"""The built-in graders of `train.rewards`, each on answers it must pass and fail, and the
checks that name a grader's problem by its key."""

from __future__ import annotations

import json

import pytest

from tunewright.config import Config
from tunewright.errors import ConfigError
from tunewright.training.rewards import (
    RewardError,
    RewardFunction,
    build_graders,
    check_on_references,
    grade,
    total_reward,
)

PROMPT = [{"role": "user", "content": "Give the total as JSON."}]
SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "integer"}},
    "required": ["total"],
}


def graders_for(rewards: list[dict], folder=None) -> list:
    config = Config.model_validate({"train": {"objective": "grpo", "rewards": rewards}})
    if folder is not None:
        config.base_dir = folder
    return build_graders(config)


def scores(grader, answers: list[str], reference: str | None = '{"total": 3}') -> list[float]:
    return [grade(grader, answer, reference, PROMPT) for answer in answers]


def test_each_built_in_grader_scores_what_it_says(tmp_path):
    (tmp_path / "total.json").write_text(json.dumps(SCHEMA))
    exact, regex, parses, inline, from_file, similar, length = graders_for(
        [
            {"type": "exact_match"},
            {"type": "regex", "pattern": r'"total":\s*\d+'},
            {"type": "json_parses"},
            {"type": "json_schema", "schema": SCHEMA},
            {"type": "json_schema", "schema": "total.json"},
            {"type": "similarity"},
            {"type": "length_penalty", "max_words": 4},
        ],
        tmp_path,
    )
    assert scores(exact, ['  {"total":  3}\n', '{"total": 4}', '{"TOTAL": 3}']) == [1, 0, 0]
    assert scores(regex, ['so {"total": 12}', '{"total": "x"}']) == [1, 0]
    assert scores(
        parses, ['{"total": 3}', "null", "3", "{total: 3}", '```json\n{"a": 1}\n```']
    ) == [
        1,
        1,
        1,
        0,
        0,
    ]
    for grader in (inline, from_file):
        assert scores(grader, ['{"total": 3}', '{"total": "3"}', "{}", "not json"]) == [1, 0, 0, 0]
    same, close, far = scores(similar, ['{"total": 3}', '{"total": 4}', "xyz"])
    assert same == pytest.approx(1.0) and far == 0.0 < close < 1
    assert scores(length, ["one two three four", "1 2 3 4 5 6", "1 2 3 4 5 6 7 8 9 10"]) == [
        0.0,
        -0.5,
        -1.0,
    ]
    assert [g.name for g in (inline, from_file)] == ["json_schema", "json_schema_2"]


def test_weights_and_the_trl_reward_function():
    exact, length = graders_for(
        [{"type": "exact_match", "weight": 2}, {"type": "length_penalty", "max_words": 1}]
    )
    assert total_reward([exact, length], [1.0, -0.5]) == pytest.approx(1.5)
    reward = RewardFunction(exact)
    assert reward.__name__ == "exact_match"  # TRL logs rewards/<__name__>/mean
    completions = [[{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "5"}]]
    assert reward([PROMPT] * 2, completions, reference=["4", "4"], source=["a:1", "a:1"]) == [1, 0]


def test_a_grader_without_a_reference_names_the_example():
    (exact,) = graders_for([{"type": "exact_match"}])
    rows = [
        {"prompt": PROMPT, "reference": "3", "source": "data.jsonl:1"},
        {"prompt": PROMPT, "reference": None, "source": "data.jsonl:2"},
    ]
    with pytest.raises(RewardError, match=r"train.rewards\[0\] \(exact_match\) .*data.jsonl:2"):
        check_on_references([exact], rows)


def test_unbuildable_graders_are_named_by_key(tmp_path):
    (tmp_path / "bad.json").write_text('{"type": "nonsense-type"}')
    with pytest.raises(ConfigError) as caught:
        graders_for(
            [
                {"type": "json_schema", "schema": "bad.json"},
                {"type": "exact_match"},
                {"python": "json:no_such_function"},
            ],
            tmp_path,
        )
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("train.rewards[0]: schema: not a valid JSON Schema")
    assert problems[1].startswith("train.rewards[2]: python:")
    assert "has no function no_such_function" in problems[1]
