"""train.objective: grpo on the OpenAI backend: train.rewards as OpenAI's reinforcement grader,
the data rows it reads, and what is refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewright.cli import preflight_problems
from tunewright.config import Config
from tunewright.config.openai_section import RFT_MODEL
from tunewright.data.records import make_record
from tunewright.errors import ConfigError
from tunewright.openai_ft.convert import rft_row, write_openai_file
from tunewright.openai_ft.graders import openai_grader, weighted_sum
from tunewright.openai_ft.submit import job_request
from tunewright.training.rewards import build_graders, grade

FILES = {"train": {"id": "file-train"}, "validation": {"id": "file-eval"}}
PROMPT = [{"role": "user", "content": "How far is it?"}]
# A user's graders module: one self-contained function (a standard-library import and a literal
# constant at the top, which are sent along) and three that are not.
GRADERS = '''from __future__ import annotations

import re
from typing import Any

import yaml

UNITS = ("km", "mi")
PATTERN = re.compile(r"\\d+")


def helper(text):
    return text.strip()


def units_right(completion: str, reference: str | None, prompt: Any) -> float:
    """1 for a number with a unit; 0.5 more when it repeats the user's words."""
    words = prompt[-1]["content"].split() if prompt else []
    found = re.search(r"(\\d+) ?(\\w+)", completion)
    score = float(bool(found) and found.group(2) in UNITS)
    return score + 0.5 * any(w in completion for w in words) + (reference is None)


def uses_helper(completion, reference, prompt):
    return float(helper(completion) == reference)


def uses_yaml_and_computed(completion, reference, prompt):
    return float(bool(PATTERN.search(completion))) + len(yaml.safe_dump({}))
'''


def grpo_config(folder: Path, rewards: list[dict], **openai: object) -> Config:
    config = Config.model_validate(
        {
            "data": {"train": str(folder / "train.jsonl")},
            "train": {"backend": "openai", "objective": "grpo", "rewards": rewards},
            "openai": {"model": RFT_MODEL, **openai},
        }
    )
    config.base_dir = folder
    return config


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "rft_user_graders.py").write_text(GRADERS)
    (tmp_path / "train.jsonl").write_text("{}\n")
    return tmp_path


def test_exact_match_and_a_python_grader_become_a_weighted_multi_grader(folder: Path):
    config = grpo_config(
        folder,
        [{"type": "exact_match"}, {"python": "rft_user_graders:units_right", "weight": 0.5}],
        hyperparameters={"n_epochs": 2},
    )
    method = job_request(config, config.openai, FILES)["method"]
    assert method["type"] == "reinforcement" and set(method) == {"type", "reinforcement"}
    sent = method["reinforcement"]
    assert sent["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }
    grader = sent["grader"]
    assert grader["type"] == "multi"
    assert grader["calculate_output"] == "exact_match + 0.5 * units_right"
    assert grader["graders"]["exact_match"] == {
        "type": "string_check",
        "name": "exact_match",
        "input": "{{sample.output_text}}",
        "reference": "{{item.reference}}",
        "operation": "eq",
    }
    python = grader["graders"]["units_right"]
    assert python["type"] == "python" and python["name"] == "units_right"
    # Sent along: what the function uses, and nothing else of the module.
    assert "import re\n" in python["source"] and 'UNITS = ("km", "mi")' in python["source"]
    assert "yaml" not in python["source"] and "def helper" not in python["source"]


def test_a_single_grader_of_weight_one_is_sent_alone(folder: Path):
    grader = openai_grader(grpo_config(folder, [{"type": "similarity"}]))
    assert grader == {
        "type": "text_similarity",
        "name": "similarity",
        "input": "{{sample.output_text}}",
        "reference": "{{item.reference}}",
        "evaluation_metric": "fuzzy_match",
    }
    weighted = openai_grader(grpo_config(folder, [{"type": "similarity", "weight": 2}]))
    assert weighted["type"] == "multi" and weighted["calculate_output"] == "2.0 * similarity"


def test_weights_become_the_same_weighted_sum():
    assert weighted_sum([("a", 1.0), ("b", 0.25), ("c", -1e-05)]) == "a + 0.25 * b - 0.00001 * c"
    assert weighted_sum([("a", -2.0), ("b", 1.0)]) == "0 - 2.0 * a + b"  # no unary minus
    values = {"a": 0.5, "b": 1.0, "c": 3.0}
    for terms in ([("a", 1.0), ("b", 0.25), ("c", -1e-05)], [("a", -2.0), ("b", 1.0)]):
        expected = sum(w * values[n] for n, w in terms)
        assert eval(weighted_sum(terms), {}, values) == pytest.approx(expected)


def test_two_graders_of_one_kind_get_distinct_names(folder: Path):
    grader = openai_grader(
        grpo_config(folder, [{"type": "regex", "pattern": "a"}, {"type": "regex", "pattern": "b"}])
    )
    assert list(grader["graders"]) == ["regex", "regex_2"]
    assert grader["calculate_output"] == "regex + regex_2"


ANSWERS = [
    "12 km",
    "  12   km\n",
    "about 12 mi, I think",
    "it is 12 km",
    '{"km": 12}',
    "[1, 2",
    "",
    "x " * 9,
]


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "regex", "pattern": r"^\d+ (km|mi)$"},
        {"type": "json_parses"},
        {"type": "length_penalty", "max_words": 3},
        {"python": "rft_user_graders:units_right"},
    ],
    ids=["regex", "json_parses", "length_penalty", "python"],
)
@pytest.mark.parametrize("reference", ["12 km", None])
def test_python_graders_sent_to_openai_score_as_the_local_ones(
    folder: Path, entry: dict, reference: str | None
):
    config = grpo_config(folder, [entry])
    (local,) = build_graders(config)
    source = openai_grader(config)["source"]
    namespace: dict = {}
    exec(compile(source, "openai-grader", "exec"), namespace)
    # The row as convert.rft_row writes it (a system prompt becomes the developer role).
    system = {"role": "system", "content": "Answer with a distance."}
    item = {"messages": [{**system, "role": "developer"}, *PROMPT], "reference": reference}
    for answer in ANSWERS:
        theirs = namespace["grade"]({"output_text": answer}, item)
        ours = grade(local, answer, reference, [system, *PROMPT])
        assert theirs == ours, answer


def test_graders_with_no_openai_equivalent_are_refused_by_key(folder: Path):
    config = grpo_config(
        folder,
        [
            {"type": "exact_match"},
            {"type": "json_schema", "schema": {"type": "object"}},
            {"python": "rft_user_graders:uses_helper"},
            {"python": "rft_user_graders:uses_yaml_and_computed"},
            {"python": "rft_user_graders:missing"},
        ],
    )
    with pytest.raises(ConfigError) as info:
        openai_grader(config)
    first, second, third, fourth = info.value.problems
    assert first.startswith("train.rewards[1]: json_schema has no OpenAI grader")
    assert second.startswith("train.rewards[2]: python: rft_user_graders:uses_helper is not self")
    assert "helper (a function defined elsewhere in rft_user_graders.py)" in second
    assert third.startswith("train.rewards[3]:")
    assert "yaml (imported from yaml, not the standard library" in third
    assert "PATTERN (computed in rft_user_graders.py, not a literal constant)" in third
    assert fourth == (
        "train.rewards[4]: python: rft_user_graders.py defines no top-level function missing"
    )


def test_validate_names_graders_options_and_a_model_openai_cannot_run(folder: Path):
    config = grpo_config(
        folder,
        [{"type": "exact_match"}, {"type": "json_schema", "schema": {"type": "object"}}],
        model="gpt-4o-mini-2024-07-18",
    )
    config.train.grpo.num_generations = 4
    config.train.grpo.beta = 0.1
    problems = preflight_problems(config)
    assert problems == [
        "train.rewards[1]: json_schema has no OpenAI grader: validating a JSON Schema needs the "
        "jsonschema package, and tunewright's python graders for OpenAI use the standard library "
        "only",
        "openai.model: gpt-4o-mini-2024-07-18 has no reinforcement fine-tuning; "
        f"train.objective: grpo needs a reasoning model: openai.model: {RFT_MODEL}",
        "train.grpo.num_generations: OpenAI's reinforcement fine-tuning has no such setting; "
        "leave it at auto with train.backend: openai",
        "train.grpo.beta: OpenAI's reinforcement fine-tuning has no such setting; leave it at "
        "auto with train.backend: openai",
    ]
    assert preflight_problems(grpo_config(folder, [{"type": "exact_match"}])) == []


def chat_record(*messages: tuple[str, str], line: int = 1, **extra: object) -> dict:
    turns = [{"role": role, "content": text} for role, text in messages]
    return make_record(turns, "chat", "data.jsonl", line, **extra)


def test_rft_rows_carry_the_prompt_as_messages_and_the_answer_as_reference(tmp_path: Path):
    chat = chat_record(
        ("system", "Be brief."),
        ("user", "2 + 2?"),
        ("assistant", "4"),
        ("user", "And 3 + 3?"),
        ("assistant", "6"),
    )
    chat["messages"][2]["weight"] = 0
    pair = make_record(
        [{"role": "user", "content": "Greet me."}],
        "preference",
        "data.jsonl",
        2,
        chosen="Hello!",
        rejected="What?",
    )
    tool_answer = chat_record(
        ("user", "Weather?"), ("tool", "sunny"), ("assistant", "Sunny."), line=3
    )
    text = make_record([{"role": "assistant", "content": "Plain text."}], "text", "data.jsonl", 4)
    target = tmp_path / "train.jsonl"
    skipped = write_openai_file(
        [chat, pair, tool_answer, text], "reinforcement", target, needs_reference=True
    )
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows == [
        {
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "2 + 2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "And 3 + 3?"},
            ],
            "reference": "6",
        },
        {"messages": [{"role": "user", "content": "Greet me."}], "reference": "Hello!"},
    ]
    assert skipped == [
        {
            "source": "data.jsonl:3",
            "reason": "the prompt ends on tool, and OpenAI answers a user turn",
        },
        {
            "source": "data.jsonl:4",
            "reason": "no prompt with an answer to learn from (plain text, or no assistant turn)",
        },
    ]


def test_rft_rows_without_a_reference_only_where_no_grader_compares_with_it():
    feedback = make_record(
        [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Go away."}],
        "feedback",
        "data.jsonl",
        7,
        label=False,
    )
    assert rft_row(feedback, needs_reference=False) == (
        {"messages": [{"role": "user", "content": "Hi?"}], "reference": None},
        "",
    )
    row, reason = rft_row(feedback, needs_reference=True)
    assert row is None and reason.startswith("no reference answer")
    tools = chat_record(("user", "Hi?"), ("assistant", "Hello."), tools=[{"type": "function"}])
    assert rft_row(tools, needs_reference=False) == (
        None,
        "has tools; tunewright sends none to reinforcement fine-tuning",
    )


def test_check_reads_reinforcement_rows_and_wants_the_prompt_to_end_on_the_user(tmp_path: Path):
    from tunewright.openai_ft.check import check_file

    rows = [
        {"messages": [{"role": "developer", "content": "Be brief."}, *PROMPT], "reference": "9"}
        for _ in range(10)
    ]
    rows.append({"messages": [*PROMPT, {"role": "assistant", "content": "9 km"}]})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = check_file(path, RFT_MODEL)  # the shape read from the first row
    assert report.kind == "rft" and report.billed_tokens == 0
    assert [(p.check, p.line) for p in report.problems] == [("last_not_user", 11)]
    assert any("billed by training time" in note for note in report.notes)
    # Told the kind, a chat file's rows are each refused for ending on the answer.
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps(rows[-1]) + "\n")
    report = check_file(chat, RFT_MODEL, kind="rft", min_examples=0)
    assert [p.check for p in report.problems] == ["last_not_user"]
    assert check_file(chat, RFT_MODEL, min_examples=0).kind == "chat"
