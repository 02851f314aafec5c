"""The export stage: merge an adapter into its base, export the weights with a model card, push.

`merge_adapter`: `<run>/train/adapter` + the base model -> `<run>/export/merged/`, a plain
transformers folder (float32 safetensors, the tokenizer with the training chat template, a
generation config), published only when the merged model reproduces the adapter model on a probe
set (`exporting/parity.py`). Prefix and prompt tuning add virtual tokens, not weight updates, so
they cannot merge and are served as adapters; full fine-tuning has nothing to merge.

`export_model`: the merged weights (merging first when they are missing or stale) or the fully
fine-tuned ones -> `<run>/export/model-<dtype>/` with a model card `README.md`, then optionally
one commit to the Hugging Face Hub, with the token from `HF_TOKEN` only.

Both close `<run>/export/manifest.json`: its inputs are the trained files, `merge` holds the
parity record and `exports` one entry per exported dtype.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright import runs
from tunewright.config import Config
from tunewright.errors import TunewrightError
from tunewright.exporting.hub import UploadFile
from tunewright.files import atomic_dir, atomic_write_json
from tunewright.runs import (
    EXPORT,
    MANIFEST,
    MERGED,
    TRAIN,
    merged_dir,
    read_manifest,
    stage_dir,
    stage_run,
)

STAGE = EXPORT
# Our short names (the CLI's --dtype) -> torch dtype names (`export.dtype` in the config).
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class ExportResult:
    folder: Path
    dtype: str  # short name: fp32, fp16, bf16
    files: list[UploadFile]
    repo_id: str | None
    private: bool
    dry_run: bool
    pushed: str | None = None  # commit URL of a real push


def merge_adapter(config: Config, *, console: Console | None = None) -> Path:
    """Merge the run's adapter into its base model and write `<run>/export/merged/`, checked for
    parity; returns that folder. For full fine-tuning, returns `<run>/train/model` untouched."""
    from tunewright.exporting.merge import check_mergeable, merge_and_check
    from tunewright.exporting.parity import probe_set
    from tunewright.models import load_tokenizer
    from tunewright.runs import hash_inputs

    console = console or Console(stderr=True)
    check_mergeable(config)  # prefix/prompt fail here, trained or not
    trained = trained_output(config)
    if trained.name == "model":
        console.print(f"[bold]merge[/bold]: full fine-tuning, nothing to merge: {trained}")
        return trained
    carried = _previous(config, hash_inputs([trained])).get("exports", {})
    target = merged_dir(config)
    with stage_run(config, STAGE, inputs=[trained]) as run:
        # The manifest is gone from here on: an older merged folder must not outlive it if this
        # merge fails its check, or it would look like this adapter's merge.
        shutil.rmtree(target, ignore_errors=True)
        _drop_stale_exports(run.dir, carried)
        tokenizer = load_tokenizer(trained)  # carries the chat template used in training
        probes = probe_set(config.run_dir)
        console.print(f"[bold]merge[/bold]: {trained} into {config.model.name}")
        with atomic_dir(run.output(MERGED)) as tmp:
            record = merge_and_check(config, trained, tokenizer, probes, tmp)
        _keep_exports(run, carried)
        run.extra.update({"merge": record, "exports": carried})
    print_parity(console, record)
    return target


def export_model(
    config: Config,
    dtype: str | None = None,
    push_to: str | None = None,
    dry_run: bool = False,
    *,
    console: Console | None = None,
) -> ExportResult:
    """Write `<run>/export/model-<dtype>/` (weights, tokenizer, generation config, model card)
    and push it to `push_to` (default `export.push_to_hub`) unless `dry_run`."""
    from tunewright.exporting.card import model_card
    from tunewright.exporting.hub import check_no_secret, hub_token, push_folder, upload_listing
    from tunewright.files import atomic_write_text
    from tunewright.runs import hash_inputs

    console = console or Console(stderr=True)
    short = dtype_name(dtype or config.export.dtype)
    repo_id = push_to or config.export.push_to_hub
    token = hub_token(repo_id, dry_run)  # a real push without a token fails before any work
    trained = trained_output(config)
    hashes = hash_inputs([trained])
    source = trained if trained.name == "model" else _merged(config, hashes, console)
    previous = _previous(config, hashes)
    name = f"model-{short}"
    with stage_run(config, STAGE, inputs=[trained]) as run:
        _drop_stale_exports(run.dir, previous.get("exports", {}))
        folder = run.dir / name
        with atomic_dir(run.output(name)) as tmp:
            write_weights(source, tmp, DTYPES[short])
            card = model_card(
                config,
                trained=hashes,
                dtype=short,
                merge=previous.get("merge"),
                where=repo_id or str(folder),
            )
            atomic_write_text(tmp / "README.md", card)
            check_no_secret(tmp, token)
        files = upload_listing(folder)
        exports = {**previous.get("exports", {}), short: _export_record(folder, source, files)}
        _keep_exports(run, exports)
        run.extra.update({"merge": previous.get("merge"), "exports": exports})
    private = config.export.private
    result = ExportResult(folder, short, files, repo_id, private, dry_run)
    if repo_id and not dry_run and token:
        console.print(f"[bold]export[/bold]: pushing {folder} to {repo_id}")
        message = f"tunewright export of run {config.name} ({short})"
        result.pushed = push_folder(folder, repo_id, token, private, message)
        _record_push(config, short, repo_id, result.pushed)
    return result


# ---------------------------------------------------------------------------------------------
# Inputs


def trained_output(config: Config) -> Path:
    """`<run>/train/adapter` or `<run>/train/model` of a completed training run that used this
    config's base model and method."""
    if config.train.backend == "openai":
        raise TunewrightError(
            "train.backend openai: the fine-tuned model lives at OpenAI; there are no local "
            "weights to merge or export",
            hint="Use the model through the OpenAI API under the name the job reported.",
        )
    train_dir = stage_dir(config, TRAIN)
    manifest = read_manifest(train_dir)
    if manifest is None:
        raise TunewrightError(
            f"no completed training run in {train_dir}", hint="Run `tunewright train CONFIG`."
        )
    if manifest.get("labels"):
        raise TunewrightError(
            "this run trained an encoder classifier (adapter + classification head); it is used "
            "as trained, not merged or exported as a text-generation model",
            hint=f"Load it from {train_dir / 'adapter'} with peft, or serve it as trained.",
        )
    _check_trained_with(config, manifest)
    trained = runs.trained_output(config)
    if trained is None:
        raise TunewrightError(
            f"{train_dir} has no adapter/ or model/ folder", hint="Run `tunewright train CONFIG`."
        )
    return trained


def _check_trained_with(config: Config, manifest: dict[str, Any]) -> None:
    """Merging into a different base, or as a different method, would be silently wrong."""
    trained = manifest.get("config", {})
    problems = [
        f"{key}: trained with '{was}', the config now says '{now}'"
        for key, was, now in (
            ("model.name", trained.get("model", {}).get("name"), config.model.name),
            ("train.method", trained.get("train", {}).get("method"), config.train.method),
        )
        if was != now
    ]
    if problems:
        raise TunewrightError(
            "the trained weights do not match the config: " + "; ".join(problems),
            hint="Train again with this config (`tunewright train CONFIG`), or restore the "
            "values it was trained with.",
        )


def _previous(config: Config, hashes: dict[str, str]) -> dict[str, Any]:
    """`merge` and `exports` of the stage manifest, when it was made from these trained files
    and its folders still exist; else nothing."""
    folder = stage_dir(config, STAGE)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("inputs") != hashes:
        return {}
    merge = manifest.get("merge") if merged_dir(config).is_dir() else None
    exports = {
        short: record
        for short, record in (manifest.get("exports") or {}).items()
        if (folder / record["folder"]).is_dir()
    }
    return {"merge": merge, "exports": exports}


def _merged(config: Config, hashes: dict[str, str], console: Console) -> Path:
    """The merged folder for the current adapter, merging first when it is missing or stale."""
    if _previous(config, hashes).get("merge"):
        return merged_dir(config)
    console.print("[bold]export[/bold]: no merged model for the current adapter yet, merging first")
    return merge_adapter(config, console=console)


# ---------------------------------------------------------------------------------------------
# Outputs


def dtype_name(dtype: str) -> str:
    """fp32/fp16/bf16 from either spelling (the CLI's or the config's)."""
    by_torch_name = {v: k for k, v in DTYPES.items()}
    short = dtype if dtype in DTYPES else by_torch_name.get(dtype)
    if short is None:
        raise TunewrightError(
            f"--dtype {dtype}: unknown dtype", hint=f"Use one of {', '.join(DTYPES)}."
        )
    return short


def write_weights(source: Path, folder: Path, dtype: str) -> None:
    """`source` loaded straight into `dtype` and saved with its tokenizer and generation config."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunewright.exporting.merge import save_model
    from tunewright.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
    # float16 tops out at 65504: larger weights become inf and the model silently breaks.
    broken = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if broken:
        raise TunewrightError(
            f"{len(broken)} weight tensors do not fit {dtype} (first: {broken[0]})",
            hint="Export as bf16 (the range of float32) or fp32.",
        )
    save_model(model, load_tokenizer(source), folder)


def _export_record(folder: Path, source: Path, files: list[UploadFile]) -> dict[str, Any]:
    from tunewright.exporting.hub import safetensors_dtypes

    return {
        "folder": folder.name,
        "source": str(source),
        "safetensors_dtypes": sorted(safetensors_dtypes(folder)),
        "files": {f.path: f.bytes for f in files},
        "total_bytes": sum(f.bytes for f in files),
        "pushed_to": None,
    }


def _drop_stale_exports(stage_dir: Path, current: dict[str, Any]) -> None:
    """Remove `model-*` folders exported from other trained weights, so every export folder
    in the stage is one its manifest lists."""
    keep = {record["folder"] for record in current.values()}
    for folder in stage_dir.glob("model-*"):
        if folder.is_dir() and folder.name not in keep:
            shutil.rmtree(folder)


def _keep_exports(run: Any, exports: dict[str, Any]) -> None:
    for record in exports.values():
        run.output(record["folder"])


def _record_push(config: Config, short: str, repo_id: str, commit_url: str) -> None:
    path = stage_dir(config, STAGE) / MANIFEST
    manifest = read_manifest(path.parent)
    if manifest is None:  # the stage closed just before; a missing manifest is a bug
        raise RuntimeError(f"{path} vanished after the export")
    manifest["exports"][short]["pushed_to"] = {"repo_id": repo_id, "commit_url": commit_url}
    atomic_write_json(path, manifest)


def print_parity(console: Console, record: dict[str, Any]) -> None:
    from tunewright.exporting.merge import parity_checks

    parity = record["parity"]
    console.print(
        f"[bold]merge[/bold]: parity passed on {parity['probes']} probes ({parity['probe_source']})"
    )
    for check in parity_checks(record):
        console.print(f"  {check.describe()}")
