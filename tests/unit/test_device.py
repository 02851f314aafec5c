import pytest
import torch

from tunewright.config import load_config
from tunewright.device import auto_dtype, detect_device
from tunewright.models import resolve_dtype
from tunewright.training.model_setup import compute_dtype


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
        ("mps", False, torch.float32),  # bf16 only on CUDA, for now
        ("cpu", False, torch.float32),  # bf16 matmuls are slow on most CPUs
    ],
)
def test_auto_is_bf16_only_on_a_cuda_gpu_that_supports_it(machine, kind, bf16, dtype):
    machine(kind, bf16)
    assert detect_device() == kind
    assert auto_dtype() == dtype


@pytest.mark.parametrize("bf16", [True, False])
def test_model_loading_and_training_share_the_auto_rule(machine, bf16):
    machine("cuda", bf16)
    assert resolve_dtype("auto", torch) == auto_dtype()
    assert compute_dtype(load_config(None, ["train.precision=auto"])) == auto_dtype()
    assert resolve_dtype("float16", torch) == torch.float16
    assert compute_dtype(load_config(None, ["train.precision=fp16"])) == torch.float16
