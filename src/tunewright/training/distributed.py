"""Several processes, one run: the `train --nproc` launcher and what each process needs to know.

The launcher validates the config, runs the data stage once, then starts the same
`tunewright train` command under torchrun (`python -m torch.distributed.run`) and forwards its
exit code. Started any other way (plain torchrun, `accelerate launch`), a process finds its place
from the WORLD_SIZE / RANK / LOCAL_RANK variables those launchers set.

Inside the processes, rank 0 alone writes the run folder (data stage, manifest, logs, final
weights); `run_on_main` lets it do a step while the others wait for its result, or for word
that it failed, instead of waiting out the collective timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tunewright.errors import TunewrightError

if TYPE_CHECKING:
    from tunewright.config import Config

T = TypeVar("T")
# The same default as TrainingArguments.ddp_timeout: how long a collective may wait for a peer.
COLLECTIVE_TIMEOUT = timedelta(seconds=1800)


class LaunchError(TunewrightError):
    """The requested process layout cannot be started."""


class PeerFailedError(TunewrightError):
    """Another process of the run failed; its own message says why."""


# ---------------------------------------------------------------------------------------------
# Inside a process


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the run. One process: world_size 1, rank 0."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def nnodes(self) -> int:
        return max(1, self.world_size // max(1, self.local_world_size))


def init_distributed() -> DistContext:
    """Read the launcher's variables and join the process group (gloo on CPU, nccl on CUDA).

    We join before the Trainer does, so the data stage can run on rank 0 while the others wait;
    accelerate then reuses the initialised group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # nccl collectives run on this process's own GPU
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    context = DistContext(
        world_size=world_size,
        rank=dist.get_rank(),
        local_rank=local_rank,
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))),
        backend=dist.get_backend(),
    )
    if not context.is_main:
        _quiet_replica()
    return context


def _quiet_replica() -> None:
    """Only rank 0 talks: the other processes repeat the same warnings and progress."""
    from transformers.utils import logging as hf_logging

    warnings.simplefilter("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def run_on_main(context: DistContext, step: Callable[[], T]) -> T:
    """Run `step` on rank 0 only; every other rank waits and returns rank 0's result (which
    must pickle), or raises PeerFailedError when rank 0 failed."""
    if not context.distributed:
        return step()
    import torch.distributed as dist

    box: list[Any] = [None]
    if context.is_main:
        try:
            box[0] = ("ok", step())
        except BaseException as exc:
            dist.broadcast_object_list([("failed", type(exc).__name__)], src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "failed":
        raise PeerFailedError(
            f"rank {context.rank}: stopped because rank 0 failed ({value})",
            hint="Rank 0's own message above says why.",
        )
    return value


def barrier(context: DistContext) -> None:
    if context.distributed:
        import torch.distributed as dist

        dist.barrier()


def gather(context: DistContext, value: T) -> list[T]:
    """Every rank's `value`, in rank order (on every rank)."""
    if not context.distributed:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


# ---------------------------------------------------------------------------------------------
# The launcher


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
