"""The HF Trainer with one change for packed causal-LM batches: logits only where there is loss.

On CPU the LM head over a 49k vocabulary is a large share of each step, and most positions are
prompt tokens whose logits are thrown away. We run the backbone as usual, keep the hidden
states of the positions whose next token is labelled (`logits_to_keep`), and take the
cross-entropy there. The loss is the sum over labelled tokens divided by the labelled tokens of
the whole accumulated batch, the same normalisation the HF models use.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from tunewright.chat import IGNORE_INDEX


class SelectiveLossTrainer(Trainer):
    """Trainer for padding-free batches (batch dimension 1, position ids per example)."""

    # Our loss is already divided by the tokens of the whole accumulated batch.
    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokens_seen = 0  # non-padding input tokens processed in training steps

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        labels = inputs.pop("labels")
        targets = labels[0, 1:]  # the token each position predicts
        keep = (targets != IGNORE_INDEX).nonzero().squeeze(-1)
        outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
        logits = outputs.logits[0].float()
        loss = F.cross_entropy(logits, targets[keep], reduction="sum")
        if num_items_in_batch is None:
            loss = loss / max(int(keep.numel()), 1)
        else:
            loss = loss / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        if model.training:
            self.tokens_seen += int(inputs["input_ids"].numel())
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


class CountingTrainer(Trainer):
    """The plain HF loss path (padded batches), counting non-padding tokens for throughput."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokens_seen = 0

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        if model.training and "attention_mask" in inputs:
            self.tokens_seen += int(inputs["attention_mask"].sum())
        return super().compute_loss(model, inputs, *args, **kwargs)
