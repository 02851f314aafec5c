"""Several processes, one run: what each process needs to know about the others.

A process finds its place from the WORLD_SIZE / RANK / LOCAL_RANK variables that torchrun,
`accelerate launch` or our own launcher (`training.launcher`) set. Rank 0 alone writes the run
folder (data stage, manifest, logs, final weights); `run_on_main` lets it do a step while the
others wait for its result, or for word that it failed, instead of waiting out the collective
timeout.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from tunewright.device import detect_device
from tunewright.errors import TunewrightError

if TYPE_CHECKING:
    pass

T = TypeVar("T")
# The same default as TrainingArguments.ddp_timeout: how long a collective may wait for a peer.
COLLECTIVE_TIMEOUT = timedelta(seconds=1800)


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
    if detect_device() == "cuda":
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


def leave_distributed(context: DistContext) -> None:
    """Leave the process group before the interpreter exits. Left to the interpreter's exit,
    gloo's worker threads can be torn down mid-flight and abort the process ("terminate called
    without an active exception") after a run that succeeded."""
    if not context.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


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
