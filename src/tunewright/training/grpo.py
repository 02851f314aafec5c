"""`train.objective: grpo` on TRL's `GRPOTrainer`: the model writes `num_generations` answers to
each prompt, the graders of `train.rewards` score them, and each answer is pushed up or down by
how its weighted reward compares with its group's.

This module is the one narrow interface in front of TRL's GRPO, as `training.preference` is for
the preference trainers: the rows it reads (each prepared example's conversation up to its last
answer, with that answer as the `reference` column the graders receive), the `train.grpo`
options with `auto` resolved and printed like every other default, and the trainer. Everything
else (model and method, precision, levers, progress, checkpoints, resume, trackers, manifest) is
tunewright's, as for SFT.

With an adapter, the KL term's reference is the base with the adapter switched off: TRL 1.16
copies a PEFT model's adapter into a frozen "ref" adapter, which for a fresh adapter is the
base model exactly, so the copy is dropped and TRL falls back to switching the adapter off.

TRL evaluates GRPO by sampling and scoring answers to the eval prompts, and its eval loss is no
measure of quality (lower is not better), so the eval split is left to the eval stage, which
scores the rewards of base and tuned answers; no checkpoint is picked by eval loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record, expected_answer, location, prompt_messages
from tunewright.errors import ConfigError
from tunewright.training.preference import ObjectiveDataError, Resolved, load_policy
from tunewright.training.rewards import Grader

GROUP_SIZES = range(8, 1, -1)  # auto: the largest of 8..2 that divides a step's completions
KL_WITH_ADAPTER = 0.04  # the GRPO paper's (DeepSeekMath) KL coefficient
MIN_COMPLETION = 16  # tokens: room for a short answer even when the references are shorter


def build_grpo_job(
    config: Config,
    folder: Path,
    tokenizer: Any,
    train: list[Record],
    evals: list[Record],
    context: Any = None,
) -> Any:
    """The `Job` of `train.objective: grpo`: the graders checked on the reference answers
    before the model loads, our model setup, TRL's trainer."""
    from tunewright.models import count_parameters
    from tunewright.training.defaults import resolve_hyper
    from tunewright.training.distributed import DistContext
    from tunewright.training.job import Job
    from tunewright.training.rewards import build_graders, check_on_references

    del evals  # scored by the eval stage, see the module docstring
    rows = grpo_rows(train, "the train split")
    graders = build_graders(config)
    check_on_references(graders, rows)
    context = context or DistContext()
    n_params = count_parameters(folder) or 0
    hyper = resolve_hyper(config.train, n_params, len(rows), processes=context.world_size)
    options = resolve_options(config, hyper, tokenizer, rows)
    sized = _sequences(tokenizer, rows, options["max_completion_length"].value)
    model, levers = load_policy(config, folder, sized, n_params, context)
    from trl import GRPOConfig

    return Job(
        model=model,
        tokenizer=tokenizer,
        train_features=rows,
        eval_features=[],
        collator=None,  # TRL's own
        trainer_class=trainer_factory(tokenizer, graders),
        n_params=n_params,
        extra={
            "batching": "padded",
            "objective": "grpo",
            "grpo": {k: {"value": v.value, "source": v.source} for k, v in options.items()},
            "rewards": [{"key": g.key, "name": g.name, "weight": g.weight} for g in graders],
        },
        levers=levers,
        args_class=GRPOConfig,
        objective_args=grpo_arguments(options, graders),
    )


def grpo_rows(records: list[Record], where: str) -> list[dict[str, Any]]:
    """Each example as TRL's conversational prompt row: `prompt` (the conversation up to its
    last answer), `reference` (that answer: what the graders compare with) and `source`
    (file:line, for the graders' errors). Refused: examples with no prompt to answer."""
    if not records:
        raise ObjectiveDataError(f"train.objective: grpo found no examples in {where}")
    rows, unanswerable = [], []
    for record in records:
        prompt = _prompt(record)
        if not any(m["role"] == "user" for m in prompt):
            unanswerable.append(location(record))
            continue
        rows.append(
            {"prompt": prompt, "reference": expected_answer(record), "source": location(record)}
        )
    if unanswerable:
        raise ObjectiveDataError(
            f"train.objective: grpo needs a prompt with a user turn in every example; "
            f"{len(unanswerable)} in {where} have none, first {unanswerable[0]}",
            hint="Plain text has no prompt to answer: give GRPO chat, instruction or other "
            "prompted examples (their answers become the graders' reference answers).",
        )
    return rows


def _prompt(record: Record) -> list[dict[str, Any]]:
    """The messages the model answers, without our loss weights (TRL renders them)."""
    if record.get("task") == "text" or not record["messages"]:
        return []
    messages = prompt_messages(record)
    return [{k: v for k, v in m.items() if k != "weight"} for m in messages]


def resolve_options(
    config: Config, hyper: Any, tokenizer: Any, rows: list[dict[str, Any]]
) -> dict[str, Resolved]:
    """`train.grpo` as this run uses it, with `auto` resolved and why."""
    options = config.train.grpo
    return {
        "num_generations": _group_size(options.num_generations, hyper),
        "max_completion_length": _completion_length(config, tokenizer, rows),
        "beta": _beta(options.beta, config.train.method),
    }


def _group_size(setting: int | str, hyper: Any) -> Resolved:
    """TRL samples whole groups: the completions of one optimizer step (per-device batch x
    accumulation x processes) must be a multiple of the group size."""
    step = hyper.global_batch
    shape = (
        f"train.batch_size {hyper.batch_size} x train.grad_accum {hyper.grad_accum} x "
        f"{hyper.processes} process(es) = {step} completions per optimizer step"
    )
    if setting != "auto":
        if step % setting:
            raise ConfigError(
                "train.grpo", [f"train.grpo.num_generations: {setting} does not divide {shape}"]
            )
        return Resolved(setting, "config")
    size = next((n for n in GROUP_SIZES if step % n == 0), None)
    if size is None:
        raise ConfigError(
            "train.grpo",
            [f"train.grpo.num_generations: auto needs a group of at least 2 answers; {shape}"],
            hint="Raise train.batch_size or train.grad_accum.",
        )
    return Resolved(size, f"auto: the largest group of 8 or fewer dividing {step} completions")


def _completion_length(config: Config, tokenizer: Any, rows: list[dict[str, Any]]) -> Resolved:
    setting = config.train.grpo.max_completion_length
    if setting != "auto":
        return Resolved(setting, "config")
    references = [r["reference"] for r in rows if r["reference"]]
    if not references:
        return Resolved(config.eval.max_new_tokens, "auto: eval.max_new_tokens (no references)")
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in references)
    room = config.data.max_seq_len - max(_prompt_tokens(tokenizer, r["prompt"]) for r in rows)
    length = max(MIN_COMPLETION, round(1.5 * longest))
    if length > room:
        return Resolved(max(room, 1), f"auto: data.max_seq_len less the longest prompt ({room})")
    return Resolved(length, f"auto: 1.5 x the longest reference answer ({longest} tokens)")


def _prompt_tokens(tokenizer: Any, prompt: list[dict[str, Any]]) -> int:
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    return len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def _beta(setting: float | str, method: str) -> Resolved:
    if setting != "auto":
        return Resolved(setting, "config")
    if method == "full":
        return Resolved(0.0, "auto: full fine-tuning; a reference would be a second copy")
    return Resolved(KL_WITH_ADAPTER, "auto: the GRPO paper's; the reference is the adapter off")


def grpo_arguments(options: dict[str, Resolved], graders: list[Grader]) -> dict[str, Any]:
    """What `GRPOConfig` gets on top of our training arguments."""
    return {
        "num_generations": options["num_generations"].value,
        "max_completion_length": options["max_completion_length"].value,
        "beta": options["beta"].value,
        "reward_weights": [g.weight for g in graders],
        # TRL's configs turn checkpointing on by default; the lever (`training.levers`) has
        # already set the model up, as for SFT
        "activation_checkpointing": False,
    }


def _sequences(tokenizer: Any, rows: list[dict[str, Any]], completion: int) -> list[dict]:
    """Each prompt with a completion of `completion` tokens, as token ids, for the memory model
    (the batch holds sampled answers, not the references)."""
    found = []
    for row in rows:
        length = _prompt_tokens(tokenizer, row["prompt"]) + completion
        found.append({"input_ids": [0] * length, "labels": [0] * length})
    return found


def trainer_factory(tokenizer: Any, graders: list[Grader]) -> Any:
    """A callable with the HF Trainer's keywords that builds TRL's GRPOTrainer with
    `EngineMixin` in front (FSDP on CPU, resume at `max_steps`) and our graders as its reward
    functions."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from tunewright.training.rewards import RewardFunction
    from tunewright.training.trainer import EngineMixin

    trainer_class = type("TunewrightGRPOTrainer", (EngineMixin, GRPOTrainer), {})

    def build(*, model: Any, args: Any, train_dataset: list, **_: Any) -> Any:
        # TRL counts the prompt and answer tokens itself; the HF count finds no `input_ids` in
        # GRPO's rows and would only warn at every step
        args.include_num_input_tokens_seen = "no"
        trainer = trainer_class(
            model=model,
            reward_funcs=[RewardFunction(g) for g in graders],
            args=args,
            train_dataset=Dataset.from_list(train_dataset),
            processing_class=tokenizer,
        )
        _drop_reference_copy(model)
        return trainer

    return build


def _drop_reference_copy(model: Any) -> None:
    """TRL copies an adapter into a "ref" adapter for the KL term; for our freshly initialised
    adapter that is the base model, which switching the adapter off gives for free (and the
    copy would be saved beside the trained adapter)."""
    if "ref" in (getattr(model, "peft_config", None) or {}):
        model.delete_adapter("ref")


def grpo_problems(config: Config) -> list[str]:
    """What `train.objective: grpo` refuses before any work, each named by its key (for
    `tunewright validate`; the graders' own checks are `training.rewards.reward_problems`)."""
    from tunewright.training.rewards import reward_problems

    if config.train.objective != "grpo":
        return []
    problems = reward_problems(config)
    if config.train.early_stopping_patience:
        problems.append(
            "train.early_stopping_patience: grpo is not evaluated during training (its eval "
            "loss is no measure of quality; the eval stage scores the rewards); leave it unset"
        )
    return problems
