"""What the training stage can check before any work: the model, the method and the memory
levers against the installed extras and the device, the distributed engine and its DeepSpeed
file."""

from __future__ import annotations

from collections.abc import Callable

from tunewright.config import Config
from tunewright.errors import ConfigError, TunewrightError
from tunewright.models import model_name_problems


def preflight(config: Config) -> list[str]:
    """Problems only training knows about, each named by its YAML key."""
    problems = model_name_problems(config.model.name, config.base_dir)
    problems += objective_problems(config)
    if config.train.backend != "local":
        return problems
    from tunewright.training.grpo import grpo_problems

    problems += grpo_problems(config)
    from tunewright.device import detect_device
    from tunewright.training.engines import check_engine, deepspeed_settings
    from tunewright.training.levers import lever_problems
    from tunewright.training.model_setup import check_method_available

    if config.train.method == "qlora":
        # Only QLoRA depends on the device, and finding the device imports torch (~2 s).
        problems += _problems_of(check_method_available, config, detect_device())
    problems += lever_problems(config, detect_device)  # asks the device only when it matters
    problems += _problems_of(check_engine, config)
    if config.train.distributed == "deepspeed" and config.train.deepspeed.config:
        problems += _problems_of(deepspeed_settings, config)
    return problems


def objective_problems(config: Config) -> list[str]:
    """`train.objective` against the backend and the method (the data is checked once it is
    prepared, `training.preference.check_objective_data`)."""
    from tunewright.config.openai_section import openai_objective_problem
    from tunewright.methods import PROMPT_METHODS

    objective = config.train.objective
    if config.train.preference.reference_free and objective != "dpo":
        return [
            f"train.preference.reference_free: applies to train.objective dpo, not {objective} "
            "(orpo and simpo use no reference model anyway)"
        ]
    if objective == "sft":
        return []
    if config.train.backend == "openai":
        # OpenAI runs dpo as its own DPO method (openai_ft.submit); it has nothing for the rest.
        problem = openai_objective_problem(objective)
        return [problem] if problem else []
    if config.train.method in PROMPT_METHODS:
        return [
            f"train.objective: {objective} does not run with train.method "
            f"{config.train.method} (TRL's preference trainers need a model whose inputs are "
            "the tokens alone); use lora, qlora, dora, ia3 or full"
        ]
    return []


def _problems_of(check: Callable[..., object], *args: object) -> list[str]:
    """A raising check's complaint as list items: each problem of a ConfigError (with its
    source), or the message of any other user error."""
    try:
        check(*args)
    except ConfigError as exc:
        return [f"{exc.source}: {problem}" for problem in exc.problems]
    except TunewrightError as exc:
        return [exc.message]
    return []


def layout_problems(config: Config, nproc: int, nnodes: int) -> tuple[list[str], list[str]]:
    """Problems (and notes) of running this config as `train --nproc NPROC --nnodes NNODES`:
    the process layout itself, and what the distributed engine makes of it."""
    from tunewright.training.distributed import DistContext
    from tunewright.training.engines import plan_engine
    from tunewright.training.launcher import Topology

    problems = Topology(nproc, nnodes, 0, "rank0-host" if nnodes > 1 else None).problems()
    if problems:
        return problems, []
    context = DistContext(world_size=nproc * nnodes, local_world_size=nproc)
    try:
        plan = plan_engine(config, context)
    except TunewrightError:
        return [], []  # the engine's own problem is already in preflight's list
    note = f"train.distributed {plan.requested}: {plan.note}" if plan.note else None
    return [], [note] if note else []
