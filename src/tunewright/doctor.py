"""`tunewright doctor`: what this machine offers for fine-tuning, as one table of facts."""

from __future__ import annotations

import importlib.util
import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

import tunewright
from tunewright.device import detect_device
from tunewright.models import list_models, tunewright_home

# extra name -> import names it brings (see pyproject's optional-dependencies)
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "trackers": ("wandb", "mlflow"),
    "quant": ("bitsandbytes",),
    "eval": ("sacrebleu", "rouge_score", "scipy", "jsonschema"),
    "openai": ("openai", "tiktoken"),
    "deepspeed": ("deepspeed",),
}
CORE = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")
# The tested versions (`make update-lock`), relative to a repository checkout.
LOCK_PATH = Path("requirements") / "lock.txt"


def collect_facts() -> dict[str, Any]:
    """Versions, device and its capabilities, memory, disk, embedded models and extras."""
    import psutil
    import torch

    home = tunewright_home()
    disk_probe = home if home.exists() else Path.home()
    device = _device(torch)
    build = torch_build(torch.__version__, torch.version.cuda, getattr(torch.version, "hip", None))
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in CORE},
        "torch_build": build,
        "lock": _lock_facts(find_lock()),
        "warnings": torch_warnings(build, gpu_usable=device["type"] == "cuda"),
        "device": device,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "memory_available_gib": round(psutil.virtual_memory().available / 2**30, 1),
        "cpu_count": psutil.cpu_count(),
        "tunewright_home": str(home),
        "free_disk_gib": round(shutil.disk_usage(disk_probe).free / 2**30, 1),
        "models": list_models(),
        "extras": {
            extra: all(importlib.util.find_spec(mod) is not None for mod in modules)
            for extra, modules in EXTRAS.items()
        },
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _device(torch: Any) -> dict[str, Any]:
    kind = detect_device()
    if kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        return {
            "type": "cuda",
            "name": props.name,
            "count": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "bf16": bool(torch.cuda.is_bf16_supported()),
        }
    if kind == "mps":
        return {"type": "mps", "name": "Apple GPU", "count": 1, "cuda": None, "bf16": True}
    capability = torch.backends.cpu.get_cpu_capability()
    return {
        "type": "cpu",
        "name": platform.processor() or platform.machine(),
        "count": 1,
        "cuda": None,
        "cpu_capability": capability,
        # bf16 runs everywhere on CPU, but is only fast with native bf16 instructions.
        "bf16": "avx512_bf16" in _cpu_flags() or "amx" in capability.lower(),
    }


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def find_lock(package_dir: Path | None = None) -> Path | None:
    """requirements/lock.txt of the checkout an editable install runs from; None when installed
    from a wheel (the package then sits in site-packages, not in a `src/` folder)."""
    package_dir = package_dir or Path(tunewright.__file__).resolve().parent
    if package_dir.parent.name != "src":
        return None
    path = package_dir.parent.parent / LOCK_PATH
    return path if path.is_file() else None


def read_lock(text: str, environment: dict[str, str] | None = None) -> dict[str, str]:
    """`name==version` pins of a lock file that apply to this interpreter and platform (or to
    `environment`, marker values to override), by canonical name."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        exact = [spec.version for spec in req.specifier if spec.operator == "=="]
        if exact:
            pins[canonicalize_name(req.name)] = exact[0]
    return pins


def lock_drift(locked: dict[str, str], installed: dict[str, str | None]) -> list[dict[str, Any]]:
    """Locked packages whose installed version differs (installed None: missing), sorted by name."""
    return [
        {"name": name, "locked": version, "installed": installed.get(name)}
        for name, version in sorted(locked.items())
        if not _same_version(installed.get(name), version)
    ]


def torch_build(version: str, cuda: str | None, hip: str | None) -> dict[str, Any]:
    """Which torch build this is, from `torch.__version__`, `torch.version.cuda` and `.hip`."""
    local = version.partition("+")[2]
    if hip:
        kind, label = "rocm", f"ROCm {hip}"
    elif cuda:
        kind, label = "cuda", f"CUDA {cuda}"
    else:
        kind, label = "cpu", "CPU-only"
    if local:
        label += f" (+{local} wheel)"
    return {"kind": kind, "version": version, "cuda": cuda, "hip": hip, "label": label}


def torch_warnings(build: dict[str, Any], gpu_usable: bool) -> list[str]:
    """What to change about the torch build on this machine; empty when it fits."""
    if build["kind"] == "cpu" or gpu_usable:
        return []
    release = build["version"].partition("+")[0]
    return [
        f"torch {build['version']} is a {build['label']} build but no GPU is usable here. "
        f"A CPU-only build is several GB smaller: pip install torch=={release} "
        "--index-url https://download.pytorch.org/whl/cpu"
    ]


def lock_rows(lock: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The lock comparison as (check, value, fine) table rows for `tunewright doctor`."""
    if lock["path"] is None:
        return [("lock", "no lock file found (not a repository checkout)", True)]
    total, drift = len(lock["locked"]), lock["drift"]
    rows = [("lock", f"{total - len(drift)} of {total} match {lock['path']}", not drift)]
    rows += [
        (f"drift {row['name']}", f"{row['installed']}, lock {row['locked']}", False)
        for row in drift
        if row["installed"] is not None
    ]
    missing = [row["name"] for row in drift if row["installed"] is None]
    if missing:
        rows.append(("locked, not installed", ", ".join(missing), False))
    if drift:
        root = Path(lock["path"]).parent.parent
        extras = ",".join(["dev", *EXTRAS])
        rows.append(("fix drift", f"pip install -c {lock['path']} -e '{root}[{extras}]'", False))
    return rows


def _lock_facts(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {"path": None, "locked": {}, "drift": []}
    locked = read_lock(path.read_text(encoding="utf-8"))
    installed = {name: _version(name) for name in locked}
    return {"path": str(path), "locked": locked, "drift": lock_drift(locked, installed)}


def _same_version(installed: str | None, locked: str) -> bool:
    if installed is None:
        return False
    try:
        return Version(installed) == Version(locked)
    except InvalidVersion:
        return installed == locked
