"""`tunewright merge` and `tunewright export`, registered on the main app by `register(app)`.

Like the rest of the CLI: heavy libraries are imported inside the commands, and user-fixable
problems raise `TunewrightError`, which `cli.main` prints with its hint and exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides such as export.private=false (value parsed as YAML).", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)
    app.command("export")(export)


def merge(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Merge the trained adapter into the base weights (checked for parity) into
    <run>/export/merged/."""
    from tunewright.config import load_config
    from tunewright.console import err, out
    from tunewright.exporting.stage import merge_adapter

    cfg = load_config(config, overrides)
    path = merge_adapter(cfg, console=err)
    if path.name == "model":
        out.print(
            f"nothing to merge: full fine-tuning trained every weight, in {path}. "
            f"Export it with: tunewright export {config}"
        )
        return
    out.print(f"[green]merged[/green] {path}")
    out.print(f"export it: tunewright export {config}")


def export(
    config: ConfigArg,
    overrides: OverridesArg = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            help="fp32, fp16 or bf16 (default: export.dtype). Safetensors only; GGUF types are "
            "--quant.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="safetensors, gguf (one file for llama.cpp / LM Studio), ollama (GGUF + "
            "Modelfile) or gguf-adapter (the LoRA adapter alone) (default: export.format).",
            show_default=False,
        ),
    ] = None,
    quant: Annotated[
        str | None,
        typer.Option(
            "--quant",
            help="GGUF tensor type: f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1; K-quants (q4_k_m, "
            "...) with llama-cpp-python (default: export.quant). Not --dtype, which is for "
            "safetensors.",
            show_default=False,
        ),
    ] = None,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            help="Hub repo id to push to (default: export.push_to_hub); token from HF_TOKEN.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Export locally and list what would be uploaded; no network."
        ),
    ] = False,
) -> None:
    """Write <run>/export/model-<dtype>/ (safetensors) or <run>/export/gguf-<quant>/ (GGUF,
    checked for parity; with a Modelfile for ollama) with a model card (merging first when
    needed), and push it to the Hugging Face Hub."""
    from rich.markup import escape
    from rich.table import Table

    from tunewright.config import load_config
    from tunewright.console import err, out
    from tunewright.exporting.stage import export_model

    # --format/--quant are config overrides, so their values are validated like the YAML keys.
    extra = [f"export.{k}={v}" for k, v in (("format", fmt), ("quant", quant)) if v is not None]
    cfg = load_config(config, [*(overrides or []), *extra])
    result = export_model(cfg, dtype, push, dry_run, console=err)
    label = result.dtype if result.format == "safetensors" else f"{result.format} {result.dtype}"
    out.print(f"[green]exported[/green] {label} -> {result.folder}")
    if result.pushed:
        out.print(f"[green]pushed[/green] to {result.repo_id}: {result.pushed}")
        return
    if not dry_run:
        return
    table = Table("file", "bytes")
    for item in result.files:
        table.add_row(escape(item.path), f"{item.bytes:,}")
    out.print(table)
    total = sum(item.bytes for item in result.files)
    visibility = "private" if result.private else "public"
    target = f"{result.repo_id} ({visibility})" if result.repo_id else "no repo (pass --push)"
    out.print(
        f"dry run: would upload {len(result.files)} files, {total:,} bytes, to {target}; "
        "nothing was sent"
    )
