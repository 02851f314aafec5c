"""lm-evaluation-harness task YAML as a suite (`eval.suites: [tasks/mine.yaml]`): a multiple-choice
task over local data files, read the way lm-eval reads it, scored by our own log-likelihood code.

What is read: `output_type: multiple_choice`; `dataset_path: json | csv | parquet` (or a data file
itself) with `dataset_kwargs.data_files` (a path, a list, or split -> path); the split from
`test_split`, else `validation_split`; `doc_to_text`, `doc_to_choice` and `doc_to_target`, each a
Jinja template (`"{{question}}"`), a field name, or (choice, target) a literal list or index;
`target_delimiter` (default " ") between the context and each choice. Anything that needs lm-eval
itself (`!function` hooks, Hugging Face hub datasets, few-shot settings) is refused by name.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError

LOCAL_FORMATS = {"json", "csv", "parquet"}


def load_task(path: Path) -> list[dict[str, Any]]:
    """The task's questions: `question` (the rendered context), `context`, `choices`, `answer`
    (an index) and `delimiter`; every problem names the YAML file and key or the data row."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _function(loader: Any, node: Any) -> None:
        raise TunewrightError(
            f"eval.suites: {path}: `!function {node.value}` needs lm-eval's Python hooks",
            hint="Write the field as a Jinja template or a field name instead.",
        )

    _Loader.add_constructor("!function", _function)
    try:
        task = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise TunewrightError(f"eval.suites: {path}: not valid YAML ({exc})") from exc
    if not isinstance(task, dict):
        raise TunewrightError(f"eval.suites: {path}: an lm-eval task is a YAML mapping")
    if task.get("output_type", "multiple_choice") != "multiple_choice":
        raise TunewrightError(
            f"eval.suites: {path}: output_type {task['output_type']!r}; suites score "
            "multiple_choice tasks only"
        )
    for key in ("doc_to_text", "doc_to_choice", "doc_to_target"):
        if key not in task:
            raise TunewrightError(f"eval.suites: {path}: `{key}` is missing")
    rows = _rows(path, task)
    delimiter = str(task.get("target_delimiter", " "))
    questions, problems = [], []
    for number, doc in enumerate(rows, start=1):
        try:
            questions.append(_question(task, doc, delimiter))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            problems.append(f"{path} row {number}: {exc}")
    if problems:
        raise TunewrightError(
            f"eval.suites: {len(problems)} task rows could not be read:\n  "
            + "\n  ".join(problems[:5])
        )
    if not questions:
        raise TunewrightError(f"eval.suites: {path}: the task's data holds no rows")
    return questions


def _rows(path: Path, task: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the task's evaluation split, from local files only."""
    source = str(task.get("dataset_path") or "")
    files = (task.get("dataset_kwargs") or {}).get("data_files")
    if files is None and source and source not in LOCAL_FORMATS:
        files, source = source, Path(source).suffix.lstrip(".").replace("jsonl", "json")
    if source not in LOCAL_FORMATS or files is None:
        raise TunewrightError(
            f"eval.suites: {path}: dataset_path {source or '(none)'!r} is not a local file",
            hint="Use dataset_path: json (or csv, parquet) with dataset_kwargs: {data_files: "
            "{test: data.jsonl}}; hub datasets cannot be fetched here.",
        )
    if isinstance(files, dict):
        split = task.get("test_split") or task.get("validation_split")
        if split not in files:
            raise TunewrightError(
                f"eval.suites: {path}: split {split!r} is not among data_files "
                f"({', '.join(map(str, files))})"
            )
        files = files[split]
    paths = [path.parent / str(f) for f in (files if isinstance(files, list) else [files])]
    rows: list[dict[str, Any]] = []
    for data in paths:
        if not data.is_file():
            raise TunewrightError(f"eval.suites: {path}: data file {data} does not exist")
        rows += _read(data, source)
    return rows


def _read(data: Path, source: str) -> list[dict[str, Any]]:
    if source == "json":
        text = data.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    import pandas as pd

    frame = pd.read_csv(data) if source == "csv" else pd.read_parquet(data)
    return frame.to_dict(orient="records")


def _question(task: dict[str, Any], doc: dict[str, Any], delimiter: str) -> dict[str, Any]:
    context = str(_value(task["doc_to_text"], doc))
    choices = _value(task["doc_to_choice"], doc)
    if isinstance(choices, str):
        choices = ast.literal_eval(choices)  # a template rendered a Python/JSON list
    if not isinstance(choices, list) or len(choices) < 2:
        raise ValueError("doc_to_choice must give a list of at least two choices")
    choices = [str(c) for c in choices]
    target = _value(task["doc_to_target"], doc)
    if isinstance(target, str) and target.strip().lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, str):
        if target not in choices:
            raise ValueError(f"doc_to_target gave {target!r}, not one of the choices")
        target = choices.index(target)
    if not isinstance(target, int) or not 0 <= target < len(choices):
        raise ValueError(f"doc_to_target must be a choice index below {len(choices)}")
    return {
        "question": context,
        "context": context,
        "choices": choices,
        "answer": target,
        "delimiter": delimiter,
    }


def _value(spec: Any, doc: dict[str, Any]) -> Any:
    """What lm-eval makes of a doc_to_* entry: a field's value, a rendered template, or the
    literal itself (a list of choices, an index)."""
    if isinstance(spec, str) and spec in doc:
        return doc[spec]
    if isinstance(spec, str) and ("{{" in spec or "{%" in spec):
        import jinja2

        environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        try:
            return environment.from_string(spec).render(**doc)
        except jinja2.UndefinedError as exc:
            raise ValueError(f"template {spec!r}: {exc.message}") from exc
    return spec
