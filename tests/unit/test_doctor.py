from pathlib import Path

import torch

from tunewright.doctor import (
    collect_facts,
    find_lock,
    lock_drift,
    lock_rows,
    read_lock,
    torch_build,
    torch_warnings,
)

LOCK = """\
# a header comment
peft==0.21.2
    # via tunewright (pyproject.toml)
PyYAML==6.0.4
numpy==2.2.6 ; python_full_version < '3.11'
numpy==2.4.6 ; python_full_version >= '3.11'
pywin32==312 ; sys_platform == 'win32'
"""
LINUX_311 = {"python_full_version": "3.11.7", "sys_platform": "linux"}


def test_read_lock_keeps_the_pins_for_this_environment(tmp_path):
    path = tmp_path / "lock.txt"
    path.write_text(LOCK)
    assert read_lock(path.read_text(), LINUX_311) == {
        "peft": "0.21.2",
        "pyyaml": "6.0.4",
        "numpy": "2.4.6",
    }
    older = {"python_full_version": "3.10.14", "sys_platform": "linux"}
    assert read_lock(path.read_text(), older)["numpy"] == "2.2.6"


def test_lock_drift_flags_a_changed_version_and_a_missing_package(tmp_path):
    path = tmp_path / "lock.txt"
    path.write_text(LOCK)
    locked = read_lock(path.read_text(), LINUX_311)
    installed = {"peft": "0.22.0", "numpy": "2.4.6"}  # pyyaml is not installed
    drift = lock_drift(locked, installed)
    assert drift == [
        {"name": "peft", "locked": "0.21.2", "installed": "0.22.0"},
        {"name": "pyyaml", "locked": "6.0.4", "installed": None},
    ]
    rows = lock_rows({"path": str(path), "locked": locked, "drift": drift})
    assert rows[0] == ("lock", f"1 of 3 match {path}", False)
    assert ("drift peft", "0.22.0, lock 0.21.2", False) in rows
    assert ("locked, not installed", "pyyaml", False) in rows
    assert rows[-1][0] == "fix drift" and f"-c {path}" in rows[-1][1]


def test_matching_versions_are_not_drift():
    locked = {"numpy": "2.4", "peft": "0.21.2"}
    assert lock_drift(locked, {"numpy": "2.4.0", "peft": "0.21.2"}) == []  # 2.4 == 2.4.0


def test_without_a_lock_file_doctor_says_so(tmp_path):
    site_packages = tmp_path / "lib" / "python3.11" / "site-packages" / "tunewright"
    site_packages.mkdir(parents=True)
    assert find_lock(site_packages) is None
    rows = lock_rows({"path": None, "locked": {}, "drift": []})
    assert rows == [("lock", "no lock file found (not a repository checkout)", True)]


def test_find_lock_in_a_checkout(tmp_path):
    package = tmp_path / "src" / "tunewright"
    package.mkdir(parents=True)
    assert find_lock(package) is None
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "lock.txt").write_text(LOCK)
    assert find_lock(package) == tmp_path / "requirements" / "lock.txt"


def test_torch_build_descriptions():
    cpu_wheel = torch_build("2.13.0+cpu", cuda=None, hip=None)
    assert cpu_wheel["kind"] == "cpu" and cpu_wheel["label"] == "CPU-only (+cpu wheel)"
    assert torch_build("2.13.0", cuda=None, hip=None)["label"] == "CPU-only"
    assert torch_build("2.13.0", cuda="12.8", hip=None)["label"] == "CUDA 12.8"
    assert torch_build("2.13.0+cu126", cuda="12.6", hip=None)["label"] == "CUDA 12.6 (+cu126 wheel)"
    rocm = torch_build("2.13.0+rocm6.4", cuda=None, hip="6.4.43484")
    assert rocm["kind"] == "rocm" and rocm["label"].startswith("ROCm 6.4.43484")


def test_a_cuda_build_without_a_gpu_is_warned_about():
    cuda = torch_build("2.13.0", cuda="12.8", hip=None)
    (warning,) = torch_warnings(cuda, gpu_usable=False)
    assert "CUDA 12.8" in warning and "torch==2.13.0 --index-url" in warning
    assert "download.pytorch.org/whl/cpu" in warning
    assert torch_warnings(cuda, gpu_usable=True) == []
    assert torch_warnings(torch_build("2.13.0+cpu", None, None), gpu_usable=False) == []


def test_collect_facts_carries_torch_build_and_lock():
    facts = collect_facts()
    assert facts["torch_build"]["version"] == torch.__version__
    assert facts["torch_build"]["kind"] in {"cpu", "cuda", "rocm"}
    assert set(facts["lock"]) == {"path", "locked", "drift"}
    assert isinstance(facts["warnings"], list)
    repo_lock = Path(__file__).resolve().parents[2] / "requirements" / "lock.txt"
    if repo_lock.is_file():  # an editable install from this checkout
        assert facts["lock"]["path"] == str(repo_lock)
        assert "transformers" in facts["lock"]["locked"]
