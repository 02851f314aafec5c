"""The OpenAI stage: prepared data -> OpenAI JSONL -> checks -> upload -> fine-tuning job.

Reads the data stage's `train.jsonl`/`eval.jsonl` (running the data stage first when they are
missing or were prepared for other data settings) and writes `<run>/openai/` (see `jobs.py`).
Nothing is uploaded when the converted files have errors; `check.json` then says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.config.openai_section import (
    OPENAI_METHODS,
    OpenAIMethod,
    OpenAISection,
    openai_objective_problem,
)
from tunewright.data.records import Record
from tunewright.errors import TunewrightError
from tunewright.files import atomic_write_json, read_jsonl
from tunewright.openai_ft import check, jobs
from tunewright.openai_ft.client import api_errors, make_client
from tunewright.openai_ft.convert import write_openai_file
from tunewright.openai_ft.graders import needs_reference, openai_grader
from tunewright.openai_ft.preflight import preference_problems, reinforcement_problems
from tunewright.runs import stage_run


class OpenAIDataError(TunewrightError):
    """The converted files would be refused by OpenAI (or by the data stage's checks)."""


PAIRS_HINT = (
    "train.objective: dpo needs preference pairs (prompt, chosen, rejected; see the README's "
    "preference shapes); train.objective: sft takes every other format."
)
CONVERT_HINTS: dict[OpenAIMethod, str] = {
    "supervised": PAIRS_HINT,
    "dpo": PAIRS_HINT,
    "reinforcement": "train.objective: grpo on OpenAI needs examples whose prompt ends on a "
    "user turn, without tools, and a reference answer where exact_match or similarity grade "
    "them; fix or drop those examples.",
}


@dataclass
class Submission:
    job: dict[str, Any]
    files: dict[str, Any]
    reports: dict[str, check.CheckReport]  # "train", and "validation" when uploaded
    client: Any  # the client that submitted, for following the job


def openai_settings(config: Config) -> OpenAISection:
    """The config's `openai` section (defaults until the section is part of Config)."""
    return getattr(config, "openai", OpenAISection())


def submit_job(config: Config, console: Console | None = None) -> Submission:
    """Convert, check, upload and create the fine-tuning job; returns it with its files."""
    console = console or Console(stderr=True)
    settings = openai_settings(config)
    if config.train.backend != "openai":
        raise TunewrightError(
            f"train.backend is {config.train.backend}, not openai",
            hint="Set train.backend: openai in the config (or pass train.backend=openai).",
        )
    method = openai_method(config)
    client = make_client(settings)  # a missing key fails here, before any work
    train, held_out, inputs = prepared_records(config, console)
    with stage_run(config, jobs.STAGE, inputs=inputs) as run:
        jobs.reset_job_outputs(run.dir)
        paths = _convert(run, config, method, train, held_out, console)
        reports = _check(config, settings, paths, method)
        atomic_write_json(run.output("check.json"), {k: r.to_dict() for k, r in reports.items()})
        _refuse_on_errors(reports)
        with api_errors(settings):
            files = _upload(client, paths, console)
            atomic_write_json(run.output("files.json"), files)
            job = client.fine_tuning.jobs.create(**job_request(config, settings, files))
        data = jobs.save_job(run.dir, job)
        run.output("job.json")
        run.extra.update(
            job_id=data["id"],
            job_status=data["status"],
            model=settings.model,
            method=method,
            # reinforcement fine-tuning is billed by training time, not by tokens
            billed_tokens_estimate=None
            if method == "reinforcement"
            else reports["train"].billed_tokens,
            epochs_estimate=reports["train"].epochs,
        )
    return Submission(data, files, reports, client)


def prepared_records(
    config: Config, console: Console
) -> tuple[list[Record], list[Record], list[Path]]:
    """The data stage's train and eval records, preparing them first when needed.

    Lengths in the data stage's report are counted with tiktoken here: no local model is
    involved in an OpenAI run, so none is loaded."""
    from tunewright.data.prepare import ensure_prepared
    from tunewright.openai_ft.tokens import DataStageTokenizer

    tokenizer = DataStageTokenizer(openai_settings(config).model)
    data_dir = ensure_prepared(config, console, tokenizer=tokenizer)
    files = [data_dir / "train.jsonl", data_dir / "eval.jsonl"]
    return read_jsonl(files[0]), read_jsonl(files[1]), files


def openai_method(config: Config) -> OpenAIMethod:
    """OpenAI's fine-tuning method for `train.objective`; refuses what OpenAI cannot run (the
    same problems `tunewright validate` reports)."""
    objective = config.train.objective
    problem = openai_objective_problem(objective)
    problems = ([problem] if problem else []) + preference_problems(config)
    problems += reinforcement_problems(config)
    if problems:
        raise TunewrightError(
            "; ".join(problems), hint="`tunewright validate CONFIG` lists every problem."
        )
    return OPENAI_METHODS[objective]


def job_request(config: Config, settings: OpenAISection, files: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `client.fine_tuning.jobs.create`: the one translation from our
    config (`openai`, `train.objective`, `train.preference`, `train.rewards`) to OpenAI's job
    request."""
    method = openai_method(config)
    hyper: dict[str, Any] = settings.hyperparameters.model_dump()
    beta = config.train.preference.beta
    if method == "dpo" and beta != "auto":  # left out, OpenAI picks it
        hyper["beta"] = beta
    options: dict[str, Any] = {"hyperparameters": hyper}
    if method == "reinforcement":
        options = {"grader": openai_grader(config), **options}
    request: dict[str, Any] = {
        "model": settings.model,
        "training_file": files["train"]["id"],
        "seed": config.seed if settings.seed is None else settings.seed,
        "method": {"type": method, method: options},
    }
    if files.get("validation"):
        request["validation_file"] = files["validation"]["id"]
    if settings.suffix:
        request["suffix"] = settings.suffix
    return request


# ---------------------------------------------------------------------------------------------
# Steps


def _convert(
    run: Any,
    config: Config,
    method: OpenAIMethod,
    train: list[Record],
    held_out: list[Record],
    console: Console,
) -> dict[str, Path]:
    sides = {"train": train}
    if openai_settings(config).validation and held_out:
        sides["validation"] = held_out
    paths = {}
    for side, records in sides.items():
        path = run.output(f"{side}.jsonl")
        skipped = write_openai_file(records, method, path, needs_reference=needs_reference(config))
        if skipped:
            raise OpenAIDataError(
                f"{len(skipped)} of {len(records)} {side} records cannot be sent as OpenAI "
                f"{method} data; first: {skipped[0]['source']}: {skipped[0]['reason']}",
                hint=CONVERT_HINTS[method],
            )
        paths[side] = path
    console.print(
        f"converted {len(train)} train"
        + (f" and {len(held_out)} validation" if "validation" in paths else "")
        + f" examples to OpenAI {method} JSONL"
    )
    return paths


def _check(
    config: Config, settings: OpenAISection, paths: dict[str, Path], method: OpenAIMethod
) -> dict[str, check.CheckReport]:
    epochs = settings.hyperparameters.n_epochs
    options = {
        "model": settings.model,
        "kind": "rft" if method == "reinforcement" else None,
        "epochs": None if epochs == "auto" else epochs,
        "min_words": config.data.min_words,
        "near_duplicate_threshold": config.data.near_duplicate_threshold,
        "seed": config.seed,
    }
    reports = {"train": check.check_file(paths["train"], **options)}
    if "validation" in paths:  # OpenAI sets no minimum size for validation files
        reports["validation"] = check.check_file(paths["validation"], **options, min_examples=0)
    return reports


def _refuse_on_errors(reports: dict[str, check.CheckReport]) -> None:
    lines = []
    for side, report in reports.items():
        for row in report.by_check():
            if row["severity"] == "error":
                where = f" (lines {', '.join(map(str, row['lines'][:5]))})" if row["lines"] else ""
                lines.append(f"  - {side}: {row['check']}: {row['count']}{where}: {row['detail']}")
    if lines:
        raise OpenAIDataError(
            "the converted data would be refused; nothing was uploaded\n" + "\n".join(lines),
            hint="See check.json in the run's openai folder, or run `tunewright openai check` "
            "on its train.jsonl; fix the source data and submit again.",
        )


def _upload(client: Any, paths: dict[str, Path], console: Console) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for side, path in paths.items():
        with open(path, "rb") as handle:
            uploaded = client.files.create(file=handle, purpose="fine-tune")
        files[side] = uploaded.model_dump(mode="json")
        console.print(f"uploaded {side} file {path.name} as {uploaded.id}")
    return files
