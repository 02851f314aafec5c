import pytest
import torch

from tunewright.config import load_config
from tunewright.device import auto_dtype, cpu_bf16, cpu_flags, detect_device
from tunewright.models import resolve_dtype
from tunewright.training.model_setup import compute_dtype, resolve_precision


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a machine with a CUDA GPU (with or without bf16), an Apple GPU, or neither."""

    def pretend(kind: str, bf16: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: kind == "cuda")
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: kind == "mps")

    return pretend


@pytest.mark.parametrize(
    ("kind", "bf16", "dtype"),
    [
        ("cuda", True, torch.bfloat16),
        ("cuda", False, torch.float32),
        ("mps", False, torch.float32),  # Apple GPUs train on the CPU, in float32
        ("cpu", True, torch.bfloat16),  # a CPU with avx512_bf16 or amx_bf16
        ("cpu", False, torch.float32),  # bf16 would be emulated, slower than fp32
    ],
)
def test_auto_is_bf16_where_the_device_multiplies_bf16_natively(
    machine, monkeypatch, kind, bf16, dtype
):
    machine(kind, bf16)
    monkeypatch.setenv("TUNEWRIGHT_CPU_BF16", "1" if bf16 else "0")
    assert detect_device() == kind
    assert auto_dtype() == dtype


@pytest.mark.parametrize("bf16", [True, False])
def test_model_loading_and_training_share_the_auto_rule(machine, bf16):
    machine("cuda", bf16)
    assert resolve_dtype("auto", torch) == auto_dtype()
    assert compute_dtype(load_config(None, ["train.precision=auto"])) == auto_dtype()
    assert resolve_dtype("float16", torch) == torch.float16
    assert compute_dtype(load_config(None, ["train.precision=fp16"])) == torch.float16


def test_cpu_detection_reads_the_real_flags(monkeypatch):
    monkeypatch.delenv("TUNEWRIGHT_CPU_BF16", raising=False)
    fast, why = cpu_bf16()
    native = {"avx512_bf16", "amx_bf16"} & cpu_flags()
    assert fast == bool(native)
    assert all(flag in why for flag in native)


@pytest.mark.parametrize(
    ("overrides", "compute", "base"),
    [
        (["train.precision=bf16"], "bfloat16", "bfloat16"),  # frozen base in bf16
        (["train.precision=bf16", "train.method=full"], "bfloat16", "float32"),  # master weights
        (["train.precision=fp16"], "float16", "float32"),
        (["train.precision=fp32"], "float32", "float32"),
        (["train.precision=bf16", "model.dtype=float32"], "bfloat16", "float32"),
    ],
)
def test_precision_keeps_trained_weights_in_float32(overrides, compute, base):
    precision = resolve_precision(load_config(None, overrides))
    assert (precision.compute, precision.base_weights) == (compute, base)
    assert precision.trained_weights == "float32"


def test_auto_precision_says_why(monkeypatch):
    monkeypatch.setenv("TUNEWRIGHT_CPU_BF16", "1")
    precision = resolve_precision(load_config(None))
    if detect_device() == "cpu":
        assert precision.compute == "bfloat16"
        assert precision.source == "auto: $TUNEWRIGHT_CPU_BF16=1"
