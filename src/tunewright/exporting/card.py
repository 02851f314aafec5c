"""The model card (`README.md`) written beside exported weights.

Everything in it is read back from the run folder, never from memory: the training manifest
(method, hyperparameters, losses), the data report (`data/validation.json`), the evaluation
(`eval/metrics.json`, only when it evaluated the weights being exported), the merge parity
record, and the resolved config exactly as saved in `<run>/config.yaml` (secrets already
redacted there). The wording lives in templates/model_card.md; metric numbers are formatted by
tunewright.formatting, exactly as in the eval report.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal

import jinja2

from tunewright import __version__, formatting
from tunewright.config import Config
from tunewright.methods import LORA_METHODS, PROMPT_METHODS
from tunewright.runs import (
    EVAL,
    TRAIN,
    eval_metrics,
    read_manifest,
    resolved_config,
    stage_dir,
    validation_report,
)

TEMPLATE = "model_card.md"


def model_card(
    config: Config,
    *,
    trained: dict[str, str],
    dtype: str,
    merge: dict[str, Any] | None,
    where: str,
    gguf: dict[str, Any] | None = None,
) -> str:
    """The card for weights exported from the trained files `trained` (path -> sha256 of the
    adapter or full model); `where` is the repo id or folder the usage example loads. `gguf`:
    for GGUF exports, the file's record (type, size, parity figures)."""
    run_dir = config.run_dir
    train = read_manifest(stage_dir(run_dir, TRAIN)) or {}
    # The train section as trained (from its manifest), else as configured now.
    section = train.get("config", {}).get("train") or config.model_dump(mode="json")["train"]
    eval_status, evaluation = _evaluation(run_dir, trained)
    return _template().render(
        name=config.name,
        base_model=config.model.name,
        hub_id=_hub_id(config.model.name),
        method=train.get("config", {}).get("train", {}).get("method", config.train.method),
        version=__version__,
        dtype=dtype,
        where=where,
        train=section,
        method_text=_method_text(section),
        hyper=train.get("hyperparameters", {}),
        metrics=train.get("metrics", {}),
        trainable=_trainable_text(train),
        seed=train.get("seed", config.seed),
        data=_read_json(validation_report(run_dir)),
        eval_status=eval_status,
        evaluation=evaluation,
        merge=merge,
        gguf=gguf,
        config_yaml=_config_text(run_dir),
    )


def _hub_id(name: str) -> str | None:
    """The hub id for the card's `base_model`, when the base is a hub model the hub can link to."""
    from tunewright.models import EMBEDDED, looks_like_hub_id

    if name in EMBEDDED:
        return EMBEDDED[name].hub_id
    return name if looks_like_hub_id(name) and not Path(name).expanduser().exists() else None


def _method_text(train: dict[str, Any]) -> str:
    method, lora = train.get("method"), train.get("lora") or {}
    if method in LORA_METHODS:
        targets = lora.get("target_modules")
        targets = ", ".join(targets) if isinstance(targets, list) else targets
        extra = ", rank-stabilised" if lora.get("use_rslora") else ""
        base = " on a 4-bit NF4 base" if method == "qlora" else ""
        return (
            f"{method}{base}: r {lora.get('r')}, alpha {lora.get('alpha')}, dropout "
            f"{lora.get('dropout')}, target {targets}{extra}"
        )
    if method in PROMPT_METHODS:
        return f"{method} tuning, {train.get('num_virtual_tokens')} virtual tokens"
    return str(method)


def _trainable_text(train: dict[str, Any]) -> str:
    trainable, total = train.get("trainable_parameters"), train.get("total_parameters")
    if not trainable or not total:
        return "-"
    return f"{trainable:,} of {total:,} ({trainable / total:.2%})"


def _evaluation(
    run_dir: Path, trained: dict[str, str]
) -> tuple[Literal["missing", "stale", "current"], dict[str, Any] | None]:
    """Whether there is an evaluation of these weights, and its results when there is."""
    path = eval_metrics(run_dir)
    if not path.is_file():
        return "missing", None
    if not _evaluated(run_dir, trained):
        return "stale", None
    return "current", json.loads(path.read_text(encoding="utf-8"))


def _evaluated(run_dir: Path, trained: dict[str, str]) -> bool:
    """Whether the eval stage's recorded inputs include the current trained weights."""
    manifest = read_manifest(stage_dir(run_dir, EVAL))
    if manifest is None:
        return False
    inputs = manifest.get("inputs", {})
    return all(inputs.get(path) == digest for path, digest in trained.items())


def _config_text(run_dir: Path) -> str:
    path = resolved_config(run_dir)
    return path.read_text(encoding="utf-8").rstrip() if path.is_file() else "# not found"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# ---------------------------------------------------------------------------------------------
# Template


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tunewright.exporting", "templates"),
        # Markdown: nothing is HTML-escaped (only .html templates would be).
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(cell=_cell, loss=_loss, filename=lambda path: Path(path).name)
    env.globals.update(
        format_value=formatting.format_value,
        format_diff=formatting.format_diff,
        format_ci=formatting.format_ci,
        format_p=formatting.format_p,
    )
    return env.get_template(TEMPLATE)


def _cell(value: Any) -> str:
    """A Markdown table cell: None as "-", and `|` escaped so it cannot split the row."""
    return str("-" if value is None else value).replace("|", "\\|")


def _loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"
