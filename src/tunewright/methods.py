"""The fine-tuning methods (`train.method`) and the families they fall into.

Config validation, training, planning, export, the pipeline and the model card all ask these
questions; they are answered here only.
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["full", "lora", "qlora", "dora", "ia3", "prefix", "prompt"]
METHODS: tuple[str, ...] = get_args(Method)

# Low-rank weight updates, all built as a PEFT LoraConfig: qlora over a 4-bit base, dora with a
# learned magnitude per output.
LORA_METHODS = ("lora", "qlora", "dora")
# Learned virtual tokens put in front of every prompt: no weight updates, so nothing to merge,
# and sequences cannot be packed (each needs its own virtual tokens).
PROMPT_METHODS = ("prefix", "prompt")
# Adapters whose weight updates fold into the base weights (`tunewright export`).
MERGEABLE_METHODS = (*LORA_METHODS, "ia3")
