"""Pushing an export folder to the Hugging Face Hub, and what would be pushed.

The token comes from the `HF_TOKEN` environment variable only (not huggingface_hub's saved
login), is passed straight to `HfApi`, and is never written, printed or logged; every file about
to leave the machine is scanned for it first.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tunewright.errors import TunewrightError
from tunewright.files import safetensors_header

TOKEN_ENV = "HF_TOKEN"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class UploadFile:
    path: str  # relative to the export folder, as it will appear in the repo
    bytes: int


def hub_token(repo_id: str | None, dry_run: bool) -> str | None:
    """The token for a push; a real push without one fails here, before any work."""
    if repo_id is not None and not _REPO_ID.match(repo_id):
        raise TunewrightError(
            f"--push {repo_id!r}: not a hub repo id", hint="Use owner/name, e.g. my-org/my-model."
        )
    token = os.environ.get(TOKEN_ENV) or None
    if repo_id and not dry_run and token is None:
        raise TunewrightError(
            f"pushing to {repo_id} needs a Hugging Face token in the {TOKEN_ENV} environment "
            "variable; nothing was exported",
            hint=f"Set {TOKEN_ENV} to a write token (https://huggingface.co/settings/tokens); it "
            "is read from the environment only and never saved. Or pass --dry-run to see what "
            "would be uploaded.",
        )
    return token


def upload_listing(folder: Path) -> list[UploadFile]:
    """Every file `upload_folder` would send, with its size."""
    return [
        UploadFile(str(p.relative_to(folder)), p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def check_no_secret(folder: Path, token: str | None) -> None:
    """Refuse to publish a folder that contains the token's value anywhere we wrote text.

    Safetensors files are checked in their JSON header (where metadata lives), not their
    tensor bytes."""
    if not token:
        return
    needle = token.encode()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = safetensors_header(path) if path.suffix == ".safetensors" else path.read_bytes()
        if needle in data:
            raise TunewrightError(
                f"the {TOKEN_ENV} value appears in {path.name} of the export; refusing to write "
                "or push it",
                hint="Remove the token from the config or data it came from (the model card "
                "quotes <run>/config.yaml), then export again.",
            )


def push_folder(folder: Path, repo_id: str, token: str, private: bool, message: str) -> str:
    """Create the repo if needed and upload the folder in one commit; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=message
        )
    except Exception as exc:  # the hub client raises many types for network and auth problems
        detail = str(exc).replace(token, "<redacted>")
        raise TunewrightError(
            f"push to {repo_id} failed: {type(exc).__name__}: {detail}",
            hint=f"The export is complete locally in {folder}; check network access and that "
            f"{TOKEN_ENV} can write to {repo_id}, then run the export again.",
        ) from None  # the chained exception could carry request headers
    return str(getattr(commit, "commit_url", commit))


def safetensors_dtypes(folder: Path) -> set[str]:
    """The tensor dtypes (`F32`, `F16`, `BF16`, ...) stored in a folder's safetensors files."""
    dtypes: set[str] = set()
    for path in folder.glob("*.safetensors"):
        header = json.loads(safetensors_header(path))
        dtypes.update(v["dtype"] for k, v in header.items() if k != "__metadata__")
    return dtypes
