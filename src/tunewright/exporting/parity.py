"""Parity between a merged model and the adapter model it came from.

A probe set (the first held-out examples of the run, topped up with built-in prompts) goes
through both models. Two things are compared: the logits at every prompt position (max absolute
difference) and the greedy replies. Each comparison is one `Check`; the merge is accepted only
when every check passes.

Tolerances:
- every merge, against the adapter on the very weights it was merged into (float32): logits
  within 1e-3 + 1e-4 x the largest |logit|, and identical greedy replies. float32 rounding grows
  with logit size and depth: a correct merge measured 2e-7 on the tiny test model (logits < 1)
  and 1.5e-4 on SmolLM2-135M (largest logit ~40, tolerance there 5e-3). Broken merges are far
  above: merging into the NF4 weights (re-quantised), saved and reloaded, measured 0.87 on the
  tiny model and 53 on SmolLM2-135M, where no greedy reply of 8 stayed the same.
- QLoRA, also against the model as trained (the adapter on the NF4 base): the merge goes into
  the original float32 weights, so it cannot equal the NF4 model; it differs by the base's own
  quantisation error. The check passes when the difference is at most twice the difference
  between the float32 and NF4 bases themselves (adapter off, same probes), and at least the
  exact tolerance. Measured: 0.06 against a base shift of 0.09 on the tiny model; 25.2 against
  26.1 on SmolLM2-135M, whose embedded weights were already 4-bit (Q4_1), so outlier logits
  move a lot while 7 of 8 greedy replies stayed the same. Greedy replies are reported, not
  required here, since quantisation noise may flip a near-tie.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError

PROBE_COUNT = 8
PROBE_NEW_TOKENS = 16  # greedy tokens per probe: enough to see divergence, cheap on a CPU
# Logits are compared over at most this many prompt tokens per probe, so 8 probes of a 49k
# vocabulary hold 8 x 64 x 49k x 4 bytes = 100 MB per model, however long the eval prompts are.
PROBE_LOGIT_TOKENS = 64
# A float32 merge may differ by EXACT_ATOL + EXACT_RTOL x max |logit| (the adapter model's).
EXACT_ATOL = 1e-3
EXACT_RTOL = 1e-4
NF4_SHIFT_FACTOR = 2.0  # QLoRA: allowed multiple of the float32-vs-NF4 base difference

BUILTIN_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "What is 12 plus 30?",
    "Give the opposite of 'hot'.",
    "Translate 'good morning' into Spanish.",
    "Name three colours.",
    "Summarise: The cat sat on the mat all afternoon.",
    "Reply with a JSON object that has one key, ok, set to true.",
)


class ParityError(TunewrightError):
    """The merged model does not reproduce the adapter model."""


@dataclass(frozen=True)
class Probes:
    conversations: list[list[dict[str, Any]]]
    source: str  # e.g. "3 from eval.jsonl, 5 built-in"


@dataclass
class ProbeOutput:
    logits: list[Any]  # one float32 tensor [tokens, vocab] per probe
    replies: list[str]


@dataclass(frozen=True)
class Check:
    against: str
    max_logit_diff: float
    tolerance: float
    tolerance_rule: str
    greedy_same: int
    probes: int
    greedy_required: bool

    @property
    def passed(self) -> bool:
        greedy_ok = self.greedy_same == self.probes or not self.greedy_required
        return self.max_logit_diff <= self.tolerance and greedy_ok

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def describe(self) -> str:
        return (
            f"vs {self.against}: max logit diff {self.max_logit_diff:.2e} "
            f"(tolerance {self.tolerance:.2e}), greedy replies {self.greedy_same}/{self.probes} "
            f"the same{'' if self.greedy_required else ' (reported only)'}"
        )


def probe_set(run_dir: Path) -> Probes:
    """The first held-out examples of the run (the prompts the model was tuned for), topped up
    with built-in general prompts to `PROBE_COUNT`."""
    from tunewright.data.records import expected_answer, prompt_messages
    from tunewright.files import read_jsonl
    from tunewright.runs import data_split

    path = data_split(run_dir, "eval")
    records = read_jsonl(path) if path.is_file() else []
    held_out = [prompt_messages(r) for r in records if expected_answer(r) is not None][:PROBE_COUNT]
    builtin = [[{"role": "user", "content": t}] for t in BUILTIN_PROMPTS]
    builtin = builtin[: PROBE_COUNT - len(held_out)]
    source = (
        f"{len(held_out)} from {path.name}, {len(builtin)} built-in" if held_out else "built-in"
    )
    return Probes(held_out + builtin, source)


def run_probes(model: Any, tokenizer: Any, probes: Probes, *, replies: bool = True) -> ProbeOutput:
    """Logits over each probe's prompt tokens and (optionally) its greedy reply."""
    import torch

    from tunewright.chat import prompt_ids
    from tunewright.generate import Decoding, generate

    model.eval()
    device = next(model.parameters()).device
    logits = []
    with torch.no_grad():
        for conversation in probes.conversations:
            ids = prompt_ids(tokenizer, conversation)[:PROBE_LOGIT_TOKENS]
            output = model(input_ids=torch.tensor([ids], device=device)).logits
            logits.append(output[0].float().cpu())
    texts = (
        generate(model, tokenizer, probes.conversations, Decoding(PROBE_NEW_TOKENS))
        if replies
        else []
    )
    return ProbeOutput(logits, texts)


def max_logit_diff(a: ProbeOutput, b: ProbeOutput) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.logits, b.logits, strict=True))


def same_replies(a: ProbeOutput, b: ProbeOutput) -> int:
    return sum(x == y for x, y in zip(a.replies, b.replies, strict=True))


def exact_check(expected: ProbeOutput, merged: ProbeOutput) -> Check:
    """The merged model must reproduce the adapter on the very weights it was merged into."""
    scale = max(float(x.abs().max()) for x in expected.logits)
    return Check(
        against="the adapter on the weights it was merged into",
        max_logit_diff=max_logit_diff(expected, merged),
        tolerance=EXACT_ATOL + EXACT_RTOL * scale,
        tolerance_rule=f"{EXACT_ATOL:g} + {EXACT_RTOL:g} x max |logit| ({scale:.3g})",
        greedy_same=same_replies(expected, merged),
        probes=len(merged.logits),
        greedy_required=True,
    )


def quantised_check(
    trained: ProbeOutput, merged: ProbeOutput, base_shift: float, floor: float
) -> Check:
    """QLoRA: the merged model may differ from the trained NF4 model by about the base's own
    quantisation error, measured as `base_shift` (float32 base vs NF4 base, adapter off);
    `floor` is the exact check's tolerance."""
    tolerance = max(NF4_SHIFT_FACTOR * base_shift, floor)
    return Check(
        against="the adapter on the NF4 base (as trained)",
        max_logit_diff=max_logit_diff(trained, merged),
        tolerance=tolerance,
        tolerance_rule=f"{NF4_SHIFT_FACTOR:g} x the float32-vs-NF4 base difference "
        f"({base_shift:.3g}), at least {floor:.3g}",
        greedy_same=same_replies(trained, merged),
        probes=len(merged.logits),
        greedy_required=False,
    )


def parity_report(probes: Probes, checks: list[Check]) -> dict[str, Any]:
    return {
        "passed": all(c.passed for c in checks),
        "probes": len(probes.conversations),
        "probe_source": probes.source,
        "max_new_tokens": PROBE_NEW_TOKENS,
        "logit_tokens_per_probe": PROBE_LOGIT_TOKENS,
        "checks": [c.as_dict() for c in checks],
    }


def require_parity(checks: list[Check], method: str) -> None:
    """Raise `ParityError` naming every failed check."""
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = "\n".join(f"  - {c.describe()}" for c in failed)
        raise ParityError(
            f"merge parity check failed for the {method} adapter; no merged model was written:"
            f"\n{lines}",
            hint="The merged weights do not reproduce the adapter model. Serve the adapter "
            "instead (`tunewright serve CONFIG`), and rerun with -v to report this as a bug.",
        )
