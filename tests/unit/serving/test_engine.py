"""The continuous-batching loop: rows that join a running batch late, or leave it early, get
exactly the tokens they would get decoded alone (greedy), and a seeded sample does not depend on
its neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tunewright.generate import Decoding, generate_batch
from tunewright.models import load_causal_lm, load_tokenizer
from tunewright.serving.engine import RunningBatch, Sampler, supports_continuous

PROMPTS = ["The quick brown", "hello there, how are", "a", "Translate to French: good morning"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir: Path) -> tuple[Any, Any]:
    return load_causal_lm(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)


def _alone(model: Any, tokenizer: Any, prompt: list[int], tokens: int) -> list[int]:
    batch = generate_batch(model, tokenizer, [prompt], Decoding(max_new_tokens=tokens))
    return batch.new_ids[0]


def test_rows_joining_and_leaving_get_their_solo_tokens(model_and_tokenizer: tuple) -> None:
    model, tokenizer = model_and_tokenizer
    assert supports_continuous(model)
    ids = [tokenizer(text)["input_ids"] for text in PROMPTS]
    wanted = {0: 12, 1: 9, 2: 5, 3: 8}  # tokens per row
    # (step, rows joining): row 0 alone, 1 and 2 join at step 3, 3 joins after 2 has left
    arrivals = {0: [0], 3: [1, 2], 10: [3]}
    batch = RunningBatch(model, tokenizer.pad_token_id)
    got: dict[int, list[int]] = {}
    seen: dict[int, list[Any]] = {}  # each row's next-token scores at each of its steps
    sampler = Sampler(False, 1.0, 1.0, None)

    def take(scores: Any, first: int) -> None:
        keep = list(range(first))
        for index in range(first, len(batch.rows)):
            row = batch.rows[index]
            seen.setdefault(row, []).append(scores[index - first].clone())
            got.setdefault(row, []).append(sampler.choose(scores[index - first]))
            if len(got[row]) < wanted[row]:
                batch.set_next(index, got[row][-1])
                keep.append(index)
        batch.keep(keep)

    for step in range(30):
        if step in arrivals:
            joining = arrivals[step]
            before = len(batch.rows)
            take(batch.admit(joining, [ids[i] for i in joining]), before)
        if batch.rows:
            take(batch.step(), 0)
    assert set(got) == set(wanted)
    for row, tokens in wanted.items():
        assert got[row] == _alone(model, tokenizer, ids[row], tokens)[:tokens], row
        # Stronger than the tokens (a random model's argmax is robust): the scores equal one
        # unpadded forward pass over the row's own sequence, so padding, joins and trims
        # changed nothing (a wrong position id or mask would).
        sequence = torch.tensor([ids[row] + got[row]])
        with torch.no_grad():
            solo = model(sequence).logits[0, len(ids[row]) - 1 : -1].float()
        torch.testing.assert_close(torch.stack(seen[row]), solo, atol=2e-4, rtol=1e-4)
    assert not batch.rows


def test_a_seeded_sample_ignores_its_neighbours(model_and_tokenizer: tuple) -> None:
    model, tokenizer = model_and_tokenizer
    ids = [tokenizer(text)["input_ids"] for text in PROMPTS[:2]]

    def sample(prompts: list[list[int]]) -> list[int]:
        batch = RunningBatch(model, tokenizer.pad_token_id)
        samplers = [Sampler(True, 1.2, 0.9, seed=11 + i) for i in range(len(prompts))]
        scores = batch.admit(list(range(len(prompts))), prompts)
        out = []
        for _ in range(6):
            tokens = [samplers[i].choose(scores[i]) for i in range(len(prompts))]
            out.append(tokens[0])
            for index, token in enumerate(tokens):
                batch.set_next(index, token)
            scores = batch.step()
        return out

    assert sample(ids[:1]) == sample(ids)
