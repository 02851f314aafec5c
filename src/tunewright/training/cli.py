"""`tunewright train` and `tunewright plan`."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated

import typer

from tunewright.console import ConfigArg, OverridesArg, err, out, state
from tunewright.errors import TunewrightError


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("plan")(plan)


def train(
    config: ConfigArg,
    overrides: OverridesArg = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last complete checkpoint.")
    ] = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            help="Processes on this machine (one per GPU; on CPU, gloo); starts them with "
            "torchrun. Engine: train.distributed.",
            show_default=False,
        ),
    ] = None,
    nnodes: Annotated[int, typer.Option("--nnodes", help="Machines taking part.")] = 1,
    node_rank: Annotated[
        int, typer.Option("--node-rank", help="This machine's index, 0..nnodes-1.")
    ] = 0,
    master_addr: Annotated[
        str | None,
        typer.Option("--master-addr", help="Host name or IP of machine 0.", show_default=False),
    ] = None,
    master_port: Annotated[
        int | None,
        typer.Option(
            "--master-port", help="Free TCP port on machine 0 [29500].", show_default=False
        ),
    ] = None,
) -> None:
    """Fine-tune the model on the prepared data (runs the data stage first when needed)."""
    from os import environ as os_environ

    from tunewright.config import load_config

    cfg = load_config(config, overrides)
    if nproc is not None or nnodes > 1:
        from tunewright.training.launcher import Topology, launch_training, train_arguments

        topology = Topology(nproc or 1, nnodes, node_rank, master_addr, master_port)
        args = train_arguments(config, overrides or [], resume, verbose=state["verbose"])
        raise typer.Exit(launch_training(cfg, topology, args, err))
    from tunewright.training.stage import train_model

    try:
        result = train_model(cfg, resume=resume, console=err)
    except TunewrightError:
        if os_environ.get("RANK", "0") != "0":
            raise typer.Exit(1) from None  # rank 0 reports the problem once
        raise
    if not result.is_main:
        return
    metrics = result.metrics
    out.print(
        f"[green]trained[/green] {metrics['steps']} steps: loss {metrics['first_loss']:.4f}"
        f" -> {metrics['final_loss']:.4f}, eval loss {metrics['eval_loss']}, "
        f"{metrics['tokens_per_s']} tokens/s"
    )
    out.print(f"saved {result.output_dir}")


def plan(
    config: ConfigArg,
    overrides: OverridesArg = None,
    nproc: Annotated[
        int, typer.Option("--nproc", help="Processes to plan for (train --nproc).")
    ] = 1,
    warmup: Annotated[
        bool,
        typer.Option("--warmup/--no-warmup", help="Time a few real steps for the ETA."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Before training: memory per device (does it fit?) and how long training will take."""
    from tunewright.config import load_config
    from tunewright.training.plan import plan_training, print_plan

    # Libraries print to stdout as they load (transformers: "[INFO] Running in WANDB offline
    # mode" when WANDB_MODE=offline); with --json, stdout must hold the JSON alone.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        result = plan_training(
            load_config(config, overrides), processes=nproc, warmup=warmup, console=err
        )
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
        return
    print_plan(result, out, err)
