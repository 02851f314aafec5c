"""The graders of `train.rewards`, made callable: each scores one answer against the example's
reference answer and prompt. Training hands them to TRL's GRPOTrainer as reward functions; the
eval stage scores base and tuned answers with the same ones (`evaluation.rewards`).

A grader that raises is a user's problem, not a crash: before training every grader runs once
on every reference answer (so a broken `python` grader fails before the model loads, naming the
example's file:line), and one that raises during training stops the run with the grader's key
and the example it was scoring.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.errors import ConfigError, TunewrightError

Score = Callable[[str, "str | None", list[dict[str, Any]]], float]
# Built-in kinds that compare with the reference answer: an example without one cannot be scored.
NEEDS_REFERENCE = ("exact_match", "similarity")
# Built-in kinds that score right/wrong (1 or 0): the eval stage tests them with McNemar.
BINARY_KINDS = ("exact_match", "regex", "json_parses", "json_schema")
# The packages some kinds need, from tunewright's `eval` extra.
PACKAGES = {"similarity": "sacrebleu", "json_schema": "jsonschema"}
SHOWN_FAILURES = 3  # examples named per failing grader


class RewardError(TunewrightError):
    """A grader cannot be built, or raised (or returned a non-number) on an example."""


@dataclass(frozen=True)
class Grader:
    """One `train.rewards` entry, ready to score: `score(completion, reference, prompt)`."""

    key: str  # "train.rewards[2]"
    name: str  # the metric name: the kind, or the python function's name (made unique)
    kind: str
    weight: float
    score: Score

    @property
    def label(self) -> str:
        """e.g. `train.rewards[2] (python graders:short)`."""
        return f"{self.key} ({self.name})"


def reward_problems(config: Config) -> list[str]:
    """What `build_graders` would refuse, each named by its key (for `tunewright validate`)."""
    try:
        build_graders(config)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def build_graders(config: Config) -> list[Grader]:
    """Every `train.rewards` entry as a `Grader`; raises ConfigError naming each entry that
    cannot be built (a package missing, a schema file, a python function that does not import)."""
    graders, problems = [], []
    for i, entry in enumerate(config.train.rewards):
        key = f"train.rewards[{i}]"
        try:
            score = _scorer(config, entry, key)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        graders.append(Grader(key, _name(entry), entry.type, entry.weight, score))
    if problems:
        raise ConfigError("train.rewards", problems)
    return _unique_names(graders)


def _name(entry: Any) -> str:
    return entry.python.rpartition(":")[2] if entry.type == "python" else entry.type


def _unique_names(graders: list[Grader]) -> list[Grader]:
    """Two graders of one kind get `regex` and `regex_2`: TRL logs each under its name."""
    seen: dict[str, int] = {}
    unique = []
    for grader in graders:
        seen[grader.name] = seen.get(grader.name, 0) + 1
        count = seen[grader.name]
        name = grader.name if count == 1 else f"{grader.name}_{count}"
        unique.append(Grader(grader.key, name, grader.kind, grader.weight, grader.score))
    return unique


# ---------------------------------------------------------------------------------------------
# The kinds


def _scorer(config: Config, entry: Any, key: str) -> Score:
    """The scoring function of one entry; ValueError says why it cannot be built."""
    package = PACKAGES.get(entry.type)
    if package and importlib.util.find_spec(package) is None:
        raise ValueError(f"{entry.type} needs {package}: pip install 'tunewright[eval]'")
    if entry.type == "exact_match":
        return lambda completion, reference, _prompt: float(
            _normalize(completion) == _normalize(_required(reference))
        )
    if entry.type == "regex":
        pattern = re.compile(entry.pattern)
        return lambda completion, _reference, _prompt: float(bool(pattern.search(completion)))
    if entry.type == "json_parses":
        return lambda completion, _reference, _prompt: float(_parse_json(completion)[0])
    if entry.type == "json_schema":
        return _json_schema_scorer(config, entry.json_schema)
    if entry.type == "similarity":
        return _chrf_scorer()
    if entry.type == "length_penalty":
        return _length_scorer(entry.max_words)
    return _python_function(config, entry.python)


def _normalize(text: str) -> str:
    """Whitespace runs collapsed, ends stripped; case kept (as the eval's exact_match)."""
    return " ".join(text.split())


def _required(reference: str | None) -> str:
    if reference is None:
        raise ValueError("this example has no reference answer to compare with")
    return reference


def _parse_json(text: str) -> tuple[bool, Any]:
    """(True, the value) when the whole answer is one JSON value, else (False, None)."""
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def _json_schema_scorer(config: Config, schema: dict[str, Any] | str) -> Score:
    import jsonschema

    if isinstance(schema, str):
        path = config.resolve(schema)
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"schema: cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"schema: {path} is not JSON: {exc}") from None
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"schema: not a valid JSON Schema: {exc.message}") from None
    validator = validator_class(schema)

    def score(completion: str, _reference: str | None, _prompt: list) -> float:
        parsed, value = _parse_json(completion)
        return float(parsed and validator.is_valid(value))

    return score


def _chrf_scorer() -> Score:
    from sacrebleu.metrics import CHRF

    chrf = CHRF()  # sacrebleu's defaults: character 6-grams, beta 2, as the eval's chrf metric

    def score(completion: str, reference: str | None, _prompt: list) -> float:
        return chrf.sentence_score(completion, [_required(reference)]).score / 100

    return score


def _length_scorer(max_words: int) -> Score:
    def score(completion: str, _reference: str | None, _prompt: list) -> float:
        # 0 up to max_words, then falling linearly: -1 at twice max_words and beyond
        excess = len(completion.split()) - max_words
        return -min(1.0, excess / max_words) if excess > 0 else 0.0

    return score


def _python_function(config: Config, target: str) -> Score:
    """`module:function`, imported with the config's folder first on the path."""
    module_name, _, function_name = target.partition(":")
    folder = str(config.base_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the user's graders.py beside config.yaml
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error while importing user code is theirs to fix
        raise ValueError(f"python: cannot import {module_name}: {_describe(exc)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        where = Path(getattr(module, "__file__", None) or module_name)
        raise ValueError(f"python: {where} has no function {function_name}")
    return function


# ---------------------------------------------------------------------------------------------
# Scoring


def grade(grader: Grader, completion: str, reference: str | None, prompt: list) -> float:
    """The grader's score as a float; anything it raises, or a result that is not a finite
    number, becomes ValueError (the caller names the example)."""
    try:
        value = grader.score(completion, reference, prompt)
    except Exception as exc:  # a user's grader may raise anything
        raise ValueError(f"raised {_describe(exc)}") from exc
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"returned {value!r}, not a finite number")
    return float(value)


def check_on_references(graders: list[Grader], rows: list[dict[str, Any]]) -> None:
    """Run every grader on every example's reference answer (as if the model had written it);
    raise RewardError naming each grader that fails, with the examples' file:line."""
    problems = []
    for grader in graders:
        failures = []
        for row in rows:
            try:
                grade(grader, row["reference"] or "", row["reference"], row["prompt"])
            except ValueError as exc:
                failures.append(f"{row['source']}: {exc}")
        if failures:
            more = len(failures) - SHOWN_FAILURES
            tail = f" (and {more} more examples)" if more > 0 else ""
            shown = "; ".join(failures[:SHOWN_FAILURES])
            problems.append(f"{grader.label} on the reference answer of {shown}{tail}")
    if problems:
        raise RewardError(
            "a grader fails before training: " + " | ".join(problems),
            hint="Each grader was run on the examples' reference answers; fix the grader (or "
            "the examples) and train again.",
        )


def total_reward(graders: list[Grader], scores: Iterable[float]) -> float:
    """The weighted sum GRPO maximises (TRL's `reward`)."""
    return sum(g.weight * s for g, s in zip(graders, scores, strict=True))


class RewardFunction:
    """A grader as TRL's GRPOTrainer calls a reward function: a batch of prompts and
    completions, with the dataset's `reference` and `source` columns as keywords. TRL names its
    metrics `rewards/<__name__>/mean`."""

    def __init__(self, grader: Grader) -> None:
        self.grader = grader
        self.__name__ = grader.name

    def __call__(
        self,
        prompts: list,
        completions: list,
        reference: list[str | None],
        source: list[str],
        **_: Any,
    ) -> list[float]:
        scores = []
        for prompt, completion, ref, where in zip(
            prompts, completions, reference, source, strict=True
        ):
            text = completion_text(completion)
            try:
                scores.append(grade(self.grader, text, ref, prompt))
            except ValueError as exc:
                raise RewardError(
                    f"{self.grader.label} {exc} on an answer to {where} during training; "
                    f"stopped (the answer: {text[:200]!r})",
                    hint="Fix the grader so it returns a number for any answer the model may "
                    "write, then train again (--resume continues from the last checkpoint).",
                ) from exc.__cause__
        return scores


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """TRL hands conversational completions as messages; the answer is their text."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
