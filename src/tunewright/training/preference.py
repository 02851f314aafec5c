"""Preference objectives (`train.objective`: dpo, orpo, simpo, kto) on TRL's trainers.

TRL is a real dependency and this module is the one narrow interface in front of it: which TRL
trainer and config class each objective uses, the options it gets from `train.preference` (with
`auto` resolved and printed like every other default), and the rows it reads. In TRL 1.x the DPO
and KTO trainers live in `trl`, ORPO and CPO in `trl.experimental`; SimPO is CPO with
`loss_type="simpo"` and no behaviour-cloning term. Everything else (the model and its method,
precision, levers, progress, checkpoints, resume, trackers, manifest) is tunewright's, as for SFT.

With an adapter, DPO's and KTO's reference model is the base with the adapter switched off (TRL
does this for a PEFT model when no reference is given): no second copy of the weights. ORPO and
SimPO need no reference.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record
from tunewright.errors import TunewrightError

PAIRED = ("dpo", "orpo", "simpo")  # read preference pairs
# objective -> (module, trainer class, config class)
TRL_CLASSES = {
    "dpo": ("trl", "DPOTrainer", "DPOConfig"),
    "kto": ("trl", "KTOTrainer", "KTOConfig"),
    "orpo": ("trl.experimental.orpo", "ORPOTrainer", "ORPOConfig"),
    "simpo": ("trl.experimental.cpo", "CPOTrainer", "CPOConfig"),
}


class ObjectiveDataError(TunewrightError):
    """The prepared data does not fit `train.objective`."""


@dataclass(frozen=True)
class Resolved:
    """One `train.preference` option as this run uses it, and why."""

    value: Any
    source: str  # "config" or "auto: <reason>"


def resolve_options(config: Config, rows: list[dict[str, Any]]) -> dict[str, Resolved]:
    """The options `train.objective` uses, with `auto` resolved from the objective (and, for
    KTO's class weights, from the labels of its rows, `trl_rows`)."""
    objective, options = config.train.objective, config.train.preference
    found: dict[str, Resolved] = {}
    if options.beta == "auto":
        default = 2.0 if objective == "simpo" else 0.1
        found["beta"] = Resolved(default, f"auto: {objective}'s usual value")
    else:
        found["beta"] = Resolved(options.beta, "config")
    if objective == "dpo":
        if options.loss_type != "auto":
            found["loss_type"] = Resolved(options.loss_type, "config")
        elif options.label_smoothing:
            found["loss_type"] = Resolved("robust", "auto: label_smoothing is set")
        else:
            found["loss_type"] = Resolved("sigmoid", "auto: the DPO paper's loss")
    if objective == "dpo":
        found["reference_free"] = Resolved(
            options.reference_free,
            "config" if "reference_free" in options.model_fields_set else "default",
        )
    if objective in ("dpo", "simpo"):
        given = "label_smoothing" in options.model_fields_set
        found["label_smoothing"] = Resolved(
            options.label_smoothing, "config" if given else "default"
        )
    if objective == "simpo":
        if options.simpo_gamma == "auto":
            found["simpo_gamma"] = Resolved(0.5, "auto: the SimPO paper's default")
        else:
            found["simpo_gamma"] = Resolved(options.simpo_gamma, "config")
    if objective == "kto":
        found.update(_kto_weights([row["label"] for row in rows]))
    return found


def _kto_weights(labels: list[bool]) -> dict[str, Resolved]:
    """KTO wants desirable x weight and undesirable x weight about equal (the KTO paper: a ratio
    in [1, 4/3]); weigh up the rarer side so they are."""
    desirable = sum(labels)
    undesirable = len(labels) - desirable
    weights = {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    if desirable and undesirable and desirable != undesirable:
        rarer = "desirable_weight" if desirable < undesirable else "undesirable_weight"
        weights[rarer] = round(max(desirable, undesirable) / min(desirable, undesirable), 4)
    reason = f"auto: {desirable} desirable, {undesirable} undesirable answers"
    return {key: Resolved(value, reason) for key, value in weights.items()}


def objective_arguments(config: Config, options: dict[str, Resolved]) -> tuple[type, dict]:
    """The TRL config class and the arguments the objective adds to our training arguments."""
    objective = config.train.objective
    module, _trainer, config_class = TRL_CLASSES[objective]
    values = {key: resolved.value for key, resolved in options.items()}
    arguments: dict[str, Any] = {
        "beta": values["beta"],
        "max_length": config.data.max_seq_len,
        # TRL's configs turn checkpointing on by default; train.gradient_checkpointing (the
        # lever, already applied to the model) decides instead
        "activation_checkpointing": False,
    }
    if objective == "dpo":
        arguments |= {
            "loss_type": [values["loss_type"]],
            "label_smoothing": values["label_smoothing"],
            "padding_free": False,
            # reference-free: TRL reads "precomputed" reference log-likelihoods, which our
            # trainer sets to 0 instead of computing them (`_ReferenceFree`)
            "precompute_ref_log_probs": values["reference_free"],
        }
    elif objective == "simpo":
        arguments |= {
            "loss_type": "simpo",
            "cpo_alpha": 0.0,  # SimPO proper: no behaviour-cloning (NLL) term
            "simpo_gamma": values["simpo_gamma"],
            "label_smoothing": values["label_smoothing"],
        }
    elif objective == "kto":
        arguments |= {k: values[k] for k in ("desirable_weight", "undesirable_weight")}
    if objective in ("orpo", "simpo"):
        # their collators truncate the prompt to this; the data stage already refused pairs
        # over max_seq_len, so nothing is cut
        arguments["max_completion_length"] = config.data.max_seq_len
    return getattr(importlib.import_module(module), config_class), arguments


def trl_rows(records: list[Record], objective: str) -> list[dict[str, Any]]:
    """Records as the rows TRL's trainer for `objective` reads (conversational). KTO takes
    feedback as it is and splits each pair into its chosen (desirable) and rejected answer."""
    from tunewright.data.export import to_trl

    rows: list[dict[str, Any]] = []
    for record in records:
        row = to_trl(record)
        if objective != "kto" or "label" in row:
            rows.append(row)
        else:
            for side, label in (("chosen", True), ("rejected", False)):
                rows.append({"prompt": row["prompt"], "completion": row[side], "label": label})
    return rows


def check_objective_data(objective: str, records: list[Record], where: str) -> None:
    """Pairs for dpo/orpo/simpo, pairs or feedback for kto; anything else is refused with what
    the prepared data holds, before the model is loaded."""
    tasks = {r.get("task") for r in records}
    wanted = {"preference"} if objective in PAIRED else {"preference", "feedback"}
    if not records:
        raise ObjectiveDataError(f"train.objective: {objective} found no examples in {where}")
    if not tasks <= wanted:
        other = sorted(str(t) for t in tasks - wanted)
        needs = "preference pairs" if objective in PAIRED else "preference pairs or feedback"
        raise ObjectiveDataError(
            f"train.objective: {objective} needs {needs}; {where} also holds {', '.join(other)} "
            "examples",
            hint="See the README's 'Preference and feedback data' for the shapes read as pairs "
            "and feedback, or set train.objective: sft.",
        )


def build_preference_job(
    config: Config,
    folder: Path,
    tokenizer: Any,
    train: list[Record],
    evals: list[Record],
    context: Any = None,
) -> Any:
    """The `Job` of a preference objective: our model setup, TRL's trainer."""
    from tunewright.models import count_parameters
    from tunewright.training.distributed import DistContext
    from tunewright.training.job import Job

    objective = config.train.objective
    check_objective_data(objective, train, "the train split")
    if evals:
        check_objective_data(objective, evals, "the eval split")
    train_rows, eval_rows = trl_rows(train, objective), trl_rows(evals, objective)
    context = context or DistContext()
    n_params = count_parameters(folder) or 0
    sized = _sequences(tokenizer, train, config.data.max_seq_len)
    model, levers = load_policy(config, folder, sized, n_params, context)
    options = resolve_options(config, train_rows)
    args_class, arguments = objective_arguments(config, options)
    return Job(
        model=model,
        tokenizer=tokenizer,
        train_features=train_rows,
        eval_features=eval_rows,
        collator=None,  # TRL's own
        trainer_class=trainer_factory(objective, tokenizer),
        n_params=n_params,
        extra={
            "batching": "padded",
            "objective": objective,
            "preference": {k: {"value": v.value, "source": v.source} for k, v in options.items()},
        },
        levers=levers,
        args_class=args_class,
        objective_args=arguments,
    )


def load_policy(
    config: Config, folder: Path, sequences: list[dict[str, Any]], n_params: int, context: Any
) -> tuple[Any, dict[str, Any]]:
    """The model a TRL objective trains, set up as for SFT: the memory levers (checkpointing
    decided by rank 0's memory model for these rendered `sequences`), the base loaded with
    them, the method's wrapper. Returns (model, levers)."""
    from tunewright.training.distributed import run_on_main
    from tunewright.training.levers import loaded_levers, resolve_levers
    from tunewright.training.memory import causal_checkpointing
    from tunewright.training.model_setup import load_base_for_training, wrap_model

    checkpointing = run_on_main(
        context,
        lambda: causal_checkpointing(config, folder, sequences, [], n_params, context.world_size),
    )
    levers = resolve_levers(config, checkpointing)
    base = load_base_for_training(config, folder, levers)
    levers = loaded_levers(levers, base)
    return wrap_model(config, base, "CAUSAL_LM"), levers


def _sequences(tokenizer: Any, records: list[Record], max_len: int) -> list[dict[str, Any]]:
    """Each sequence the trainer runs, rendered (a pair is two), for the memory model."""
    from tunewright.chat import render_example
    from tunewright.data.records import sides

    found = []
    for record in records:
        for _side, messages in sides(record):
            rendered = render_example(
                tokenizer, messages, tools=record.get("tools"), max_seq_len=max_len
            )
            found.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return found


class _ReferenceFree:
    """DPO with `train.preference.reference_free`: TRL 1.16's DPOTrainer has no such mode, but
    with `precompute_ref_log_probs` it reads the reference's log-likelihoods from the columns
    `ref_chosen_logps` / `ref_rejected_logps` that `_precompute_ref_logps` adds. Adding zeros
    there instead is exactly reference-free DPO: the loss compares the policy's chosen and
    rejected log-likelihoods alone, and no reference forward pass runs."""

    # Only reference_free sets precompute_ref_log_probs (`objective_arguments`), so TRL calls
    # this only then.
    def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
        zeros = [0.0] * len(dataset)
        return dataset.add_column("ref_chosen_logps", zeros).add_column("ref_rejected_logps", zeros)


def trainer_factory(objective: str, tokenizer: Any) -> Any:
    """A callable with the HF Trainer's keywords that builds TRL's trainer for `objective`,
    with `EngineMixin` in front (FSDP on CPU, resume at `max_steps`)."""
    from datasets import Dataset

    from tunewright.training.trainer import EngineMixin

    module, trainer_name, _config = TRL_CLASSES[objective]
    base = getattr(importlib.import_module(module), trainer_name)
    mixins = (EngineMixin, _ReferenceFree) if objective == "dpo" else (EngineMixin,)
    trainer_class = type(f"Tunewright{trainer_name}", (*mixins, base), {})

    def build(
        *, model: Any, args: Any, train_dataset: list, eval_dataset: list | None, **_: Any
    ) -> Any:
        return trainer_class(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(train_dataset),
            eval_dataset=Dataset.from_list(eval_dataset) if eval_dataset else None,
            processing_class=tokenizer,
        )

    return build
