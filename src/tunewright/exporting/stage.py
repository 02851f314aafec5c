"""The export stage: merge an adapter into its base, export the weights with a model card, push.

`merge_adapter`: `<run>/train/adapter` + the base model -> `<run>/export/merged/`, a plain
transformers folder (float32 safetensors, the tokenizer with the training chat template, a
generation config), published only when the merged model reproduces the adapter model on a probe
set (`exporting/parity.py`). Prefix and prompt tuning add virtual tokens, not weight updates, so
they cannot merge and are served as adapters; full fine-tuning has nothing to merge.

`export_model`: the merged weights (merging first when they are missing or stale) or the fully
fine-tuned ones -> `<run>/export/model-<dtype>/` with a model card `README.md`, then optionally
one commit to the Hugging Face Hub, with the token from `HF_TOKEN` only.

`export_gguf` (`--format gguf` / `ollama`): the same weights -> `<run>/export/gguf-<quant>/`,
one GGUF file written with the `gguf` package (gguf_file.py), published only when it reproduces
the model it came from (gguf_parity.py); for Ollama also a `Modelfile` whose Go template matches
the chat template used in training (ollama.py).

All close `<run>/export/manifest.json`: its inputs are the trained files, `merge` holds the
parity record and `exports` one entry per exported dtype or GGUF type.
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
    format: str = "safetensors"
    parity: dict[str, Any] | None = None  # GGUF exports: the parity record


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
    from tunewright.exporting.hub import check_no_secret, hub_token, upload_listing
    from tunewright.files import atomic_write_text
    from tunewright.runs import hash_inputs

    console = console or Console(stderr=True)
    if config.export.format != "safetensors":
        return export_gguf(config, push_to, dry_run, console=console)
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
    result = ExportResult(folder, short, files, repo_id, config.export.private, dry_run)
    _push(config, result, token, short, console)
    return result


def export_gguf(
    config: Config,
    push_to: str | None = None,
    dry_run: bool = False,
    *,
    console: Console | None = None,
) -> ExportResult:
    """Write `<run>/export/gguf-<export.quant>/`: the GGUF file (checked for parity), for
    `export.format` ollama a Modelfile, and the model card; then push like `export_model`."""
    from tunewright.exporting.card import model_card
    from tunewright.exporting.gguf_file import check_quant, write_gguf
    from tunewright.exporting.gguf_parity import check_gguf
    from tunewright.exporting.hub import check_no_secret, hub_token, upload_listing
    from tunewright.exporting.ollama import MODELFILE, match_template, modelfile
    from tunewright.exporting.parity import probe_set
    from tunewright.files import atomic_write_text
    from tunewright.models import load_tokenizer
    from tunewright.runs import hash_inputs

    console = console or Console(stderr=True)
    fmt, quant = config.export.format, config.export.quant
    if fmt == "gguf-adapter":
        return export_gguf_adapter(config, push_to, dry_run, console=console)
    check_quant(quant)  # an unknown type or a K-quant without llama.cpp fails before any work
    repo_id = push_to or config.export.push_to_hub
    token = hub_token(repo_id, dry_run)
    trained = trained_output(config)
    tokenizer = load_tokenizer(trained)  # the chat template used in training
    match = match_template(tokenizer) if fmt == "ollama" else None  # refused before merging
    hashes = hash_inputs([trained])
    source = trained if trained.name == "model" else _merged(config, hashes, console)
    previous = _previous(config, hashes)
    name = f"gguf-{quant}"
    file_name = f"{config.name}-{quant}.gguf"
    with stage_run(config, STAGE, inputs=[trained]) as run:
        _drop_stale_exports(run.dir, previous.get("exports", {}))
        folder = run.dir / name
        with atomic_dir(run.output(name)) as tmp:
            console.print(f"[bold]export[/bold]: writing {file_name} ({quant}) from {source}")
            summary = write_gguf(
                source, tmp / file_name, quant, name=config.name, end_of_turn=end_of_turn(tokenizer)
            )
            console.print("[bold]export[/bold]: loading it back to check parity")
            parity = check_gguf(source, tmp / file_name, quant, probe_set(config.run_dir))
            if match is not None:
                atomic_write_text(tmp / MODELFILE, modelfile(file_name, tokenizer, match))
            gguf = {
                **summary.as_dict(),
                "format": fmt,
                "file": file_name,
                "parity": parity,
                "ollama_template": match.template.name if match else None,
            }
            card = model_card(
                config,
                trained=hashes,
                dtype=quant,
                merge=previous.get("merge"),
                where=repo_id or str(folder),
                gguf=gguf,
            )
            atomic_write_text(tmp / "README.md", card)
            check_no_secret(tmp, token)
        files = upload_listing(folder)
        record = {**_export_record(folder, source, files), "gguf": gguf}
        exports = {**previous.get("exports", {}), name: record}
        _keep_exports(run, exports)
        run.extra.update({"merge": previous.get("merge"), "exports": exports})
    print_gguf_parity(console, parity)
    result = ExportResult(folder, quant, files, repo_id, config.export.private, dry_run)
    result.format, result.parity = fmt, parity
    _push(config, result, token, name, console)
    return result


def export_gguf_adapter(
    config: Config,
    push_to: str | None = None,
    dry_run: bool = False,
    *,
    console: Console | None = None,
) -> ExportResult:
    """Write `<run>/export/gguf-adapter/`: the LoRA adapter as a GGUF adapter file, checked
    against the merge (gguf_adapter.py), and the model card; then push like `export_model`."""
    from tunewright.exporting.card import model_card
    from tunewright.exporting.gguf_adapter import check_adapter, write_gguf_adapter
    from tunewright.exporting.hub import check_no_secret, hub_token, upload_listing
    from tunewright.files import atomic_write_text
    from tunewright.models import resolve_model
    from tunewright.runs import hash_inputs

    console = console or Console(stderr=True)
    repo_id = push_to or config.export.push_to_hub
    token = hub_token(repo_id, dry_run)
    trained = trained_output(config)
    if trained.name == "model" or config.train.method not in ("lora", "qlora"):
        raise TunewrightError(
            f"--format gguf-adapter: train.method {config.train.method} has no LoRA adapter "
            "to write",
            hint="Export the model instead: --format gguf.",
        )
    hashes = hash_inputs([trained])
    merged = _merged(config, hashes, console)  # the yardstick for the adapter's deltas
    previous = _previous(config, hashes)
    name, file_name = "gguf-adapter", f"{config.name}-lora.gguf"
    base_dir = resolve_model(config.model.name)
    with stage_run(config, STAGE, inputs=[trained]) as run:
        _drop_stale_exports(run.dir, previous.get("exports", {}))
        folder = run.dir / name
        with atomic_dir(run.output(name)) as tmp:
            console.print(f"[bold]export[/bold]: writing {file_name} from {trained}")
            summary = write_gguf_adapter(trained, base_dir, tmp / file_name, name=config.name)
            check = check_adapter(tmp / file_name, base_dir, merged)
            gguf = {**summary, "format": "gguf-adapter", "file": file_name, "check": check}
            card = model_card(
                config,
                trained=hashes,
                dtype="f32",
                merge=previous.get("merge"),
                where=repo_id or str(folder),
                gguf=gguf,
            )
            atomic_write_text(tmp / "README.md", card)
            check_no_secret(tmp, token)
        files = upload_listing(folder)
        record = {**_export_record(folder, trained, files), "gguf": gguf}
        exports = {**previous.get("exports", {}), name: record}
        _keep_exports(run, exports)
        run.extra.update({"merge": previous.get("merge"), "exports": exports})
    console.print(
        f"[bold]export[/bold]: adapter deltas match the merge on {check['weights_checked']} "
        f"weights (max difference {check['max_delta_diff']:.2e})"
    )
    result = ExportResult(folder, "f32", files, repo_id, config.export.private, dry_run)
    result.format = "gguf-adapter"
    _push(config, result, token, name, console)
    return result


def end_of_turn(tokenizer: Any) -> list[str]:
    """The end-of-turn tokens the chat template writes, in `END_OF_TURN` order."""
    from tunewright.generate import END_OF_TURN

    template = getattr(tokenizer, "chat_template", None) or ""
    vocab = tokenizer.get_vocab()
    found = [t for t in END_OF_TURN if t in vocab and t in template]
    return found or [tokenizer.eos_token]


def _push(
    config: Config, result: ExportResult, token: str | None, key: str, console: Console
) -> None:
    from tunewright.exporting.hub import push_folder

    if not (result.repo_id and not result.dry_run and token):
        return
    console.print(f"[bold]export[/bold]: pushing {result.folder} to {result.repo_id}")
    message = f"tunewright export of run {config.name} ({result.dtype})"
    result.pushed = push_folder(result.folder, result.repo_id, token, result.private, message)
    _record_push(config, key, result.repo_id, result.pushed)


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
    """Remove `model-*` and `gguf-*` folders exported from other trained weights, so every
    export folder in the stage is one its manifest lists."""
    keep = {record["folder"] for record in current.values()}
    for folder in [*stage_dir.glob("model-*"), *stage_dir.glob("gguf-*")]:
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


def print_gguf_parity(console: Console, record: dict[str, Any]) -> None:
    from tunewright.exporting.gguf_parity import GgufCheck

    check = GgufCheck(**{k: v for k, v in record["check"].items() if k != "passed"})
    console.print(
        f"[bold]export[/bold]: GGUF parity passed on {record['probes']} probes "
        f"({record['probe_source']})"
    )
    console.print(f"  {check.describe()}")
