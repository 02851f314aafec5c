"""The HF Trainer, with FSDP that really shards on CPU (`EngineTrainer`), and one change for
packed causal-LM batches: logits only where there is loss (`SelectiveLossTrainer`). Input
tokens are counted by the Trainer itself, summed over all processes.

On CPU the LM head over a 49k vocabulary is a large share of each step, and most positions are
prompt tokens whose logits are thrown away. We run the backbone as usual, keep the hidden
states of the positions whose next token is labelled (`logits_to_keep`), and take the
cross-entropy there. The loss is the sum over labelled tokens divided by the labelled tokens of
the whole accumulated batch, the same normalisation the HF models use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from tunewright.chat import IGNORE_INDEX
from tunewright.training.engines import enable_fsdp_on_cpu
from tunewright.training.head_loss import chunked_head_loss, plain_head


def _run_without_head(
    model: torch.nn.Module, inputs: dict[str, Any], keep: torch.Tensor
) -> tuple[Any, torch.Tensor]:
    """The model's forward with the head fed nothing: returns its outputs and the hidden states
    the head would have received at the `keep` positions (after the final norm and whatever
    else the architecture does before its head), shape (len(keep), hidden)."""
    head = getattr(model, "module", model).get_output_embeddings()
    seen: list[torch.Tensor] = []

    def take(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        seen.append(args[0])
        return (args[0][..., :0, :], *args[1:])

    handle = head.register_forward_pre_hook(take)
    try:
        outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
    finally:
        handle.remove()
    return outputs, seen[-1].squeeze(0)


class EngineMixin:
    """What every tunewright trainer adds to an HF `Trainer` subclass (the HF one, TRL's):
    FSDP that really shards on CPU too (see `training.engines`), checkpoint folders every rank
    agrees on, and no step past `max_steps` on resume."""

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        enable_fsdp_on_cpu(self)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        # With sharded FSDP checkpoints this writes nothing (the shards are written with the
        # optimizer, later), yet right after it every rank checks whether the checkpoint
        # folder exists to track the best one. Ranks that disagree then disagree on loading
        # the best checkpoint at the end, a collective, and hang. Make the folder exist.
        if output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)

    def get_batch_samples(
        self, epoch_iterator: Iterator, num_batches: int, device: torch.device
    ) -> tuple[list, torch.Tensor | int | None]:
        """No batches once `max_steps` optimizer steps are done. The HF loop checks the budget
        only after a step, so resuming from the checkpoint taken at the last step (a run killed
        while saving its result) would train one step more than the uninterrupted run."""
        if self.state.max_steps > 0 and self.state.global_step >= self.state.max_steps:
            return [], None
        return super().get_batch_samples(epoch_iterator, num_batches, device)


class EngineTrainer(EngineMixin, Trainer):
    """The HF Trainer with `EngineMixin`; the plain HF loss, for padded batches."""


class SelectiveLossTrainer(EngineTrainer):
    """Trainer for padding-free batches (batch dimension 1, position ids per example)."""

    # Our loss is already divided by the tokens of the whole accumulated batch.
    loss_is_scaled_for_ga = True

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        labels = inputs.pop("labels")
        if getattr(getattr(self, "args", None), "use_liger_kernel", False):
            return self._fused_loss(model, inputs, labels, return_outputs, num_items_in_batch)
        targets = labels[0, 1:]  # the token each position predicts
        keep = (targets != IGNORE_INDEX).nonzero().squeeze(-1)
        weight = self._plain_head_weight(model)
        if weight is not None:
            outputs, hidden = _run_without_head(model, inputs, keep)
            loss = chunked_head_loss(hidden, weight, targets[keep])
        else:
            outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
            # squeeze, not [0]: the backward of an index zero-fills a gradient of the logits' size
            logits = outputs.logits.squeeze(0).float()
            loss = F.cross_entropy(logits, targets[keep], reduction="sum")
        if num_items_in_batch is None:
            loss = loss / max(int(keep.numel()), 1)
        else:
            loss = loss / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def _plain_head_weight(self, model: torch.nn.Module) -> torch.nn.Parameter | None:
        """The head's weight when `chunked_head_loss` can stand in for head + cross-entropy:
        not under FSDP or DeepSpeed, whose shards are not the whole weight."""
        if getattr(self, "is_fsdp_enabled", False) or getattr(self, "is_deepspeed_enabled", False):
            return None
        return plain_head(getattr(model, "module", model))  # DDP wraps the model in .module

    def _fused_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        labels: torch.Tensor,
        return_outputs: bool,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> Any:
        """CUDA with Liger (`train.liger`): the patched forward takes the labels and computes the
        cross-entropy from the hidden states chunk by chunk, never holding the logits. It shifts
        the labels and divides by `num_items_in_batch` (else by the labelled tokens) as above."""
        outputs = model(
            **inputs, labels=labels, use_cache=False, num_items_in_batch=num_items_in_batch
        )
        loss = outputs.loss
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, None, None]:
        """Eval loss through the same selective path (mean over labelled tokens)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, dict(inputs))
        return loss.detach(), None, None
