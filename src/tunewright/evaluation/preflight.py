"""What the evaluation stage can check before any work: the packages its metrics need, and
the judge's client and API key."""

from __future__ import annotations

import importlib.util
import os

from tunewright.config import Config
from tunewright.evaluation.metrics import ROUGE, select_metrics
from tunewright.evaluation.suites import suite_path

# metric -> the package that scores it (all in the `eval` extra)
METRIC_PACKAGES = {"bleu": "sacrebleu", "chrf": "sacrebleu", **dict.fromkeys(ROUGE, "rouge_score")}


def preflight(config: Config) -> list[str]:
    """Metrics whose package is missing, named by `eval.metrics`; the paired statistics need
    scipy whatever the metrics."""
    if config.train.backend != "local":
        return []
    # Every task type's defaults when `auto`: the task is only known once the data is read.
    tasks = ("chat", "classification", "summarization", "code")
    wanted = sorted(
        {m for task in tasks for m in select_metrics(config.eval.metrics, "auto", task)[0]}
    )
    missing = {
        name: METRIC_PACKAGES[name]
        for name in wanted
        if name in METRIC_PACKAGES and importlib.util.find_spec(METRIC_PACKAGES[name]) is None
    }
    problems = [
        f"eval.metrics: {name} needs {package}, which is not installed "
        "(pip install 'tunewright[eval]')"
        for name, package in missing.items()
    ]
    if importlib.util.find_spec("scipy") is None:
        problems.append(
            "eval: the paired statistics need scipy, which is not installed "
            "(pip install 'tunewright[eval]')"
        )
    problems += [
        f"eval.suites: {name} does not exist"
        for name in config.eval.suites
        if not suite_path(config, name).is_file()
    ]
    judge = config.eval.judge
    if judge is not None:
        if importlib.util.find_spec("openai") is None:
            problems.append(
                "eval.judge: needs the openai package, which is not installed "
                "(pip install 'tunewright[openai]')"
            )
        if not os.environ.get(judge.api_key_env, "").strip():
            problems.append(f"eval.judge.api_key_env: {judge.api_key_env} is not set")
    return problems
