"""`tunewright train --nproc`: the torchrun command line and the process layout checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.support.projects import make_project

from tunewright.training.distributed import DistContext, run_on_main
from tunewright.training.launcher import (
    LaunchError,
    Topology,
    launch,
    torchrun_command,
    train_arguments,
)


def test_one_machine_uses_a_private_rendezvous():
    args = train_arguments(Path("c.yaml"), ["train.lora.r=8"], resume=True, verbose=False)
    command = torchrun_command(Topology(nproc=2), args)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in command and "--standalone" in command
    assert command[-6:] == ["-m", "tunewright", "train", "c.yaml", "train.lora.r=8", "--resume"]


def test_several_machines_name_rank_zero():
    topology = Topology(nproc=8, nnodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29600)
    command = torchrun_command(topology, train_arguments(Path("c.yaml"), [], False, True))
    for flag in ("--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=29600"):
        assert flag in command
    assert "--standalone" not in command
    assert command[-5:] == ["-m", "tunewright", "--verbose", "train", "c.yaml"]


@pytest.mark.parametrize(
    ("topology", "message"),
    [
        (Topology(nproc=0), "--nproc must be >= 1"),
        (Topology(nproc=2, nnodes=2, master_addr=None), "--master-addr is needed"),
        (Topology(nproc=2, nnodes=2, node_rank=2, master_addr="h"), "--node-rank must be in 0..1"),
    ],
)
def test_bad_layouts_fail_before_starting(topology, message):
    with pytest.raises(LaunchError, match=message):
        launch(topology, ["train", "c.yaml"], console=None)


def test_no_launch_inside_a_launch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LaunchError, match="already distributed"):
        launch(Topology(nproc=2), ["train", "c.yaml"], console=None)


def test_run_on_main_is_a_plain_call_for_one_process():
    assert run_on_main(DistContext(), lambda: 41 + 1) == 42
    assert DistContext().is_main and not DistContext().distributed


def test_cli_reports_layout_errors(run_cli, tmp_path):
    # Nothing but train.method: the layout is checked before the config is used.
    train = {"method": "lora", "report_to": None}
    config = make_project(tmp_path, model=None, data=None, train=train)
    code, _, err = run_cli("train", str(config), "--nnodes", "2", "--nproc", "2")
    assert code == 1 and "--master-addr is needed" in err
