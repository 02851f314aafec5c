"""The `train --nproc` launcher: validates the config, runs the data stage once, then starts the
same `tunewright train` command under torchrun (`python -m torch.distributed.run`) and forwards
its exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewright.errors import TunewrightError

if TYPE_CHECKING:
    from tunewright.config import Config


class LaunchError(TunewrightError):
    """The requested process layout cannot be started."""


@dataclass(frozen=True)
class Topology:
    """Processes per machine and, for several machines, how they find rank 0's machine."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    def problems(self) -> list[str]:
        found = []
        if self.nproc < 1:
            found.append(f"--nproc must be >= 1 (got {self.nproc})")
        if self.nnodes < 1:
            found.append(f"--nnodes must be >= 1 (got {self.nnodes})")
        if not 0 <= self.node_rank < self.nnodes:
            found.append(f"--node-rank must be in 0..{self.nnodes - 1} (got {self.node_rank})")
        if self.nnodes > 1 and not self.master_addr:
            found.append("--master-addr is needed with several machines (rank 0's hostname or IP)")
        return found


def torchrun_command(topology: Topology, tunewright_args: list[str]) -> list[str]:
    """`python -m torch.distributed.run ... -m tunewright <args>`."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={topology.nproc}"]
    if topology.nnodes == 1 and topology.master_addr is None and topology.master_port is None:
        # A private rendezvous on a free local port: two runs on one machine cannot collide.
        command.append("--standalone")
    else:
        command += [
            f"--nnodes={topology.nnodes}",
            f"--node-rank={topology.node_rank}",
            f"--master-addr={topology.master_addr or '127.0.0.1'}",
            f"--master-port={topology.master_port or 29500}",
        ]
    return [*command, "-m", "tunewright", *tunewright_args]


def train_arguments(
    config_path: Path, overrides: list[str], resume: bool, verbose: bool
) -> list[str]:
    """The `tunewright train` command line each process runs."""
    return [
        *(["--verbose"] if verbose else []),
        "train",
        str(config_path),
        *overrides,
        *(["--resume"] if resume else []),
    ]


def launch_training(
    config: Config, topology: Topology, tunewright_args: list[str], console: Any
) -> int:
    """Check what can be checked once, run the data stage once (one machine; with several,
    global rank 0 does it), then start the processes and return torchrun's exit code."""
    from tunewright.data.prepare import ensure_prepared
    from tunewright.training.engines import check_engine

    _check_topology(topology)
    if topology.nproc * topology.nnodes > 1:
        check_engine(config)
    if topology.nnodes == 1:
        ensure_prepared(config, console)
    return launch(topology, tunewright_args, console)


def _check_topology(topology: Topology) -> None:
    if "WORLD_SIZE" in os.environ:
        raise LaunchError(
            "--nproc was given inside an already distributed launch (WORLD_SIZE is set)",
            hint="Drop --nproc when starting tunewright through torchrun or accelerate launch.",
        )
    problems = topology.problems()
    if problems:
        raise LaunchError("; ".join(problems))


def launch(topology: Topology, tunewright_args: list[str], console: Any) -> int:
    """Start torchrun in a subprocess and return its exit code."""
    _check_topology(topology)
    command = torchrun_command(topology, tunewright_args)
    console.print(
        f"[bold]launch[/bold]: {topology.nproc} process(es) per machine x {topology.nnodes} "
        f"machine(s): {' '.join(command[1:])}"
    )
    child = subprocess.Popen(command, env=_child_env(topology))
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached torchrun too (same process group); it stops the workers itself.
        child.wait()
        return 130


def _child_env(topology: Topology) -> dict[str, str]:
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        # Share this machine's cores between its processes instead of oversubscribing them
        # (torchrun would otherwise pick 1 thread each and say so).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        env["OMP_NUM_THREADS"] = str(max(1, (cores or 1) // topology.nproc))
    return env
