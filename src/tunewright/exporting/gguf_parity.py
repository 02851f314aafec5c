"""Parity between a written GGUF file and the model it was written from.

The GGUF is loaded back the way transformers reads it (`gguf_file=`: the tokenizer and chat
template rebuilt from the file's metadata, the tensors dequantised to float32) and goes through
the same probe set as the merge check (`parity.py`). Three things are compared:

- the prompt: each probe rendered with the file's own chat template and tokenised by the file's
  own tokenizer must give the very token ids the trained tokenizer gives (a lost chat template,
  a wrong vocabulary or split rule fails here);
- the logits over the prompt tokens (same ids into both models): the largest absolute
  difference, and how often both models pick the same next token ("top-1 agreement");
- the greedy replies, each model with its own tokenizer, end to end.

Thresholds per type, measured on the embedded SmolLM2-135M-Instruct (largest |logit| about 40;
8 built-in probes, ~470 prompt positions; README "GGUF parity" has the table) and on the tiny test
models (logits about 1):
- f16: logits within 1e-2 + 3e-3 x max |logit|, every greedy reply the same, top-1 agreement at
  least 0.98 (a random tiny model has near-ties that flip). Measured: 4.1e-2 and 1.0 on SmolLM2
  (tolerance there 0.13); 4e-4 on the tiny Llama.
- bf16 (8 mantissa bits against f16's 11): 1e-2 + 2.5e-2 x max |logit|, top-1 agreement at least
  0.95; replies reported, not required (a near-tie may flip). Measured 0.28 and 1.0 on SmolLM2.
- quantised types: replies reported; the file fails when its top-1 agreement falls below, or its
  largest logit error relative to max |logit| rises above, the type's figures in `QUANT_LIMITS`,
  set between the measured loss and what a layout fault does. (SmolLM2's embedded weights were
  already Q4_1, which is why Q4_1 re-quantises so well and Q5_1 worse than Q5_0 there.)
A planted fault is far outside these: without llama.cpp's q/k row order SmolLM2's logits move by
40 (their own size), top-1 agreement drops to 0.56 and no greedy reply stays the same; the tiny
test Llama (attention sharpened, see the tests) moves by 0.52 against 4e-4.
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunewright.exporting.parity import ParityError, ProbeOutput, Probes, run_probes


@dataclass(frozen=True)
class Limits:
    """What a GGUF of one type must reach against the float32 model."""

    logit_atol: float | None  # exact types: max |diff| <= atol + rtol x max |logit|
    logit_rtol: float  # quantised types: max |diff| / max |logit| <= rtol
    min_top1: float  # fraction of prompt positions whose argmax is the same
    greedy_required: bool


EXACT_LIMITS = {
    "f16": Limits(1e-2, 3e-3, 0.98, greedy_required=True),
    "bf16": Limits(1e-2, 2.5e-2, 0.95, greedy_required=False),
}
# Quantised: (max relative logit error, min top-1 agreement), measured on SmolLM2 as
# q8_0 (0.033, 0.965), q5_1 (0.45, 0.70), q5_0 (0.25, 0.80), q4_1 (0.32, 0.86), q4_0 (0.51, 0.60);
# the q/k layout fault there measured (1.0, 0.56). Limits sit between the two.
QUANT_LIMITS = {
    "q8_0": Limits(None, 0.10, 0.90, greedy_required=False),
    "q5_1": Limits(None, 0.80, 0.55, greedy_required=False),
    "q5_0": Limits(None, 0.60, 0.60, greedy_required=False),
    "q4_1": Limits(None, 0.65, 0.70, greedy_required=False),
    "q4_0": Limits(None, 0.80, 0.45, greedy_required=False),
}
# llama.cpp's K-quants: checked like the legacy type of about the same size.
K_QUANT_LIMITS = {"q6_k": "q8_0", "q5_k": "q5_1", "q4_k": "q4_1", "q3_k": "q4_0", "q2_k": "q4_0"}


class GgufParityError(ParityError):
    """The GGUF file does not reproduce the model it was written from."""


@dataclass(frozen=True)
class GgufCheck:
    quant: str
    prompts_same: int  # probes whose file-rendered prompt ids equal the trained tokenizer's
    prompt_problem: str | None  # why the file's tokenizer/template could not render, if so
    max_logit_diff: float
    logit_scale: float  # max |logit| of the source model
    tolerance: float
    tolerance_rule: str
    top1_agreement: float
    min_top1: float
    greedy_same: int
    greedy_required: bool
    probes: int

    @property
    def passed(self) -> bool:
        greedy_ok = self.greedy_same == self.probes or not self.greedy_required
        return (
            self.prompts_same == self.probes
            and self.max_logit_diff <= self.tolerance
            and self.top1_agreement >= self.min_top1
            and greedy_ok
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def describe(self) -> str:
        prompts = f"prompts {self.prompts_same}/{self.probes} identical"
        if self.prompt_problem:
            prompts += f" ({self.prompt_problem})"
        return (
            f"{self.quant}: {prompts}; max logit diff {self.max_logit_diff:.2e} (tolerance "
            f"{self.tolerance:.2e}); top-1 agreement {self.top1_agreement:.3f} (at least "
            f"{self.min_top1:g}); greedy replies {self.greedy_same}/{self.probes} the same"
            f"{'' if self.greedy_required else ' (reported only)'}"
        )


def limits_for(quant: str) -> Limits:
    if quant in EXACT_LIMITS:
        return EXACT_LIMITS[quant]
    if quant in QUANT_LIMITS:
        return QUANT_LIMITS[quant]
    legacy = next(v for k, v in K_QUANT_LIMITS.items() if quant.startswith(k))
    return QUANT_LIMITS[legacy]


def check_gguf(source: Path, gguf_path: Path, quant: str, probes: Probes) -> dict[str, Any]:
    """Load `gguf_path` back with transformers and compare it with the model folder `source`
    on `probes`. Returns the parity record; raises `GgufParityError` when it fails."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunewright.models import load_tokenizer

    tokenizer = load_tokenizer(source)
    expected = run_probes(AutoModelForCausalLM.from_pretrained(source), tokenizer, probes)
    gc.collect()
    file_tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if file_tokenizer.pad_token is None:
        file_tokenizer.pad_token = file_tokenizer.eos_token
    model = load_gguf_model(gguf_path)
    same, problem = compare_prompts(tokenizer, file_tokenizer, probes)
    # Logits on the trained tokenizer's ids, so a tokenizer fault cannot hide a weight fault.
    got = run_probes(model, tokenizer, probes, replies=False)
    replies = greedy_replies(model, file_tokenizer, probes) if problem is None else []
    check = build_check(quant, expected, got, replies, same, problem, len(probes.conversations))
    del model
    gc.collect()
    record = {
        "passed": check.passed,
        "probes": len(probes.conversations),
        "probe_source": probes.source,
        "check": check.as_dict(),
    }
    if not check.passed:
        raise GgufParityError(
            f"GGUF parity check failed; the file was not published:\n  - {check.describe()}",
            hint="The GGUF does not reproduce the model it was written from. Export safetensors "
            "instead, and rerun with -v to report this as a bug.",
        )
    return record


def load_gguf_model(path: Path) -> Any:
    """The file as transformers loads it: dequantised to float32, ready for inference."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()


def compare_prompts(tokenizer: Any, file_tokenizer: Any, probes: Probes) -> tuple[int, str | None]:
    from tunewright.chat import prompt_ids

    same = 0
    for conversation in probes.conversations:
        try:
            got = prompt_ids(file_tokenizer, conversation)
        except Exception as exc:  # no template, or one that fails: the file cannot chat
            return 0, f"{type(exc).__name__}: {str(exc)[:200]}"
        same += got == prompt_ids(tokenizer, conversation)
    return same, None


def greedy_replies(model: Any, tokenizer: Any, probes: Probes) -> list[str]:
    from tunewright.exporting.parity import PROBE_NEW_TOKENS
    from tunewright.generate import Decoding, generate

    return generate(model, tokenizer, probes.conversations, Decoding(PROBE_NEW_TOKENS))


def build_check(
    quant: str,
    expected: ProbeOutput,
    got: ProbeOutput,
    replies: list[str],
    prompts_same: int,
    problem: str | None,
    probes: int,
) -> GgufCheck:
    limits = limits_for(quant)
    scale = max(float(x.abs().max()) for x in expected.logits)
    diff = max(float((x - y).abs().max()) for x, y in zip(expected.logits, got.logits, strict=True))
    positions = sum(x.shape[0] for x in expected.logits)
    agree = sum(
        int((x.argmax(-1) == y.argmax(-1)).sum())
        for x, y in zip(expected.logits, got.logits, strict=True)
    )
    if limits.logit_atol is not None:
        tolerance = limits.logit_atol + limits.logit_rtol * scale
        rule = f"{limits.logit_atol:g} + {limits.logit_rtol:g} x max |logit| ({scale:.3g})"
    else:
        tolerance = limits.logit_rtol * scale
        rule = f"{limits.logit_rtol:g} x max |logit| ({scale:.3g})"
    greedy_same = sum(a == b for a, b in zip(expected.replies, replies, strict=False))
    return GgufCheck(
        quant=quant,
        prompts_same=prompts_same,
        prompt_problem=problem,
        max_logit_diff=diff,
        logit_scale=scale,
        tolerance=tolerance,
        tolerance_rule=rule,
        top1_agreement=agree / positions,
        min_top1=limits.min_top1,
        greedy_same=greedy_same,
        greedy_required=limits.greedy_required,
        probes=probes,
    )
