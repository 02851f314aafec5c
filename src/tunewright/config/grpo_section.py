"""The `train.grpo` options and the `train.rewards` graders of `train.objective: grpo`.

Each grader scores one generated answer (a float; most give 0 or 1) and carries a `weight`; the
reward GRPO maximises is the weighted sum. The built-in kinds follow OpenAI's graders; `python`
names a function of your own. What needs the file system or other packages (a schema file, an
importable module) is checked in `training.rewards.reward_problems`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator

from tunewright.config.fields import Auto, PositiveInt, Section

Weight = Annotated[float, Field(allow_inf_nan=False)]
WEIGHT = "Multiplies this grader's score in the total reward (default 1; negative penalises)."


class GrpoSection(Section):
    num_generations: Annotated[int, Field(ge=2)] | Auto = Field(
        "auto",
        description="Answers sampled per prompt (the group whose rewards are compared); must "
        "divide the completions of one optimizer step (train.batch_size x train.grad_accum x "
        "processes). auto: the largest number from 8 down to 2 that does.",
    )
    max_completion_length: PositiveInt | Auto = Field(
        "auto",
        description="Tokens generated per answer at most. auto: 1.5 x the longest reference "
        "answer of the train split (at least 16), within data.max_seq_len.",
    )
    beta: Annotated[float, Field(ge=0)] | Auto = Field(
        "auto",
        description="KL coefficient: how strongly the model is kept near the base (0: no "
        "reference model at all). auto: 0.04 (the GRPO paper's) with an adapter, whose reference "
        "is the base with the adapter switched off; 0 for full fine-tuning, which would need a "
        "second copy of the weights.",
    )


class ExactMatchGrader(Section):
    type: Literal["exact_match"]
    weight: Weight = Field(1.0, description=WEIGHT)


class RegexGrader(Section):
    type: Literal["regex"]
    pattern: str = Field(description="Python regular expression; 1 when it matches anywhere.")
    weight: Weight = Field(1.0, description=WEIGHT)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


class JsonParsesGrader(Section):
    type: Literal["json_parses"]
    weight: Weight = Field(1.0, description=WEIGHT)


class JsonSchemaGrader(Section):
    # `schema` is BaseModel's (deprecated) method name, so the field is `json_schema` in Python
    # and `schema` in YAML, both ways.
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=False)

    type: Literal["json_schema"]
    json_schema: dict[str, Any] | str = Field(
        alias="schema",
        description="A JSON Schema as a mapping, or the path of a JSON file holding one "
        "(relative to the config file); 1 when the answer parses and validates.",
    )
    weight: Weight = Field(1.0, description=WEIGHT)


class SimilarityGrader(Section):
    type: Literal["similarity"]
    weight: Weight = Field(1.0, description=WEIGHT)


class LengthPenaltyGrader(Section):
    type: Literal["length_penalty"]
    max_words: PositiveInt = Field(
        description="Words allowed; beyond them the score falls linearly to -1 at twice as many."
    )
    weight: Weight = Field(1.0, description=WEIGHT)


class PythonGrader(Section):
    python: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:function, importable from the config's folder; called as "
        "function(completion, reference, prompt) and must return a number.",
    )
    type: Literal["python"] = "python"
    weight: Weight = Field(1.0, description=WEIGHT)


def _kind(value: Any) -> str | None:
    """The grader kind of a YAML entry: `python` when it names a function, else its `type`."""
    if isinstance(value, dict):
        return "python" if "python" in value else value.get("type")
    return getattr(value, "type", None)


Grader = Annotated[
    Annotated[ExactMatchGrader, Tag("exact_match")]
    | Annotated[RegexGrader, Tag("regex")]
    | Annotated[JsonParsesGrader, Tag("json_parses")]
    | Annotated[JsonSchemaGrader, Tag("json_schema")]
    | Annotated[SimilarityGrader, Tag("similarity")]
    | Annotated[LengthPenaltyGrader, Tag("length_penalty")]
    | Annotated[PythonGrader, Tag("python")],
    Discriminator(
        _kind,
        custom_error_type="grader_kind",
        custom_error_message="needs `type:` exact_match, regex, json_parses, json_schema, "
        "similarity or length_penalty, or `python: module:function`",
    ),
]
