"""Packed SDPA: each example of a packed row attends only to itself, with the same result as
padded batches and as transformers' own masked attention over the row."""

from __future__ import annotations

import pytest
import torch
from tests.unit.training.test_packing import records
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunewright.training.attention import PACKED_SDPA, register_packed_sdpa
from tunewright.training.features import PackedCollator, PaddedCollator, causal_features
from tunewright.training.trainer import SelectiveLossTrainer


def loss_of(model, batch) -> torch.Tensor:
    trainer = SelectiveLossTrainer.__new__(SelectiveLossTrainer)  # only compute_loss is used
    with torch.no_grad():
        return SelectiveLossTrainer.compute_loss(trainer, model, dict(batch))


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    register_packed_sdpa()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    features = causal_features(tokenizer, records(4), max_seq_len=256, train_on_prompt=False)
    return tiny_model_dir, tokenizer, features


def test_packed_sdpa_loss_equals_padded_and_masked_losses(setup):
    folder, tokenizer, features = setup
    padded = PaddedCollator(tokenizer.pad_token_id)(features)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa").eval()
    with torch.no_grad():
        logits = model(**{k: padded[k] for k in ("input_ids", "attention_mask")}).logits
    targets = padded["labels"][:, 1:]
    mask = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][mask], targets[mask])

    packed = PackedCollator()(features)
    masked = loss_of(model, packed)  # transformers' block mask from the position ids
    model.set_attn_implementation(register_packed_sdpa())
    assert model.config._attn_implementation == PACKED_SDPA
    per_example = loss_of(model, packed)
    assert torch.allclose(per_example, expected, atol=1e-5), (per_example, expected)
    assert torch.allclose(per_example, masked, atol=1e-5), (per_example, masked)


def test_an_example_never_sees_its_neighbour(setup):
    folder, _tokenizer, features = setup
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=PACKED_SDPA).eval()
    first, second = features[0], features[1]
    changed = {**first, "input_ids": [(t + 7) % 300 + 3 for t in first["input_ids"]]}
    outputs = []
    for pair in ([first, second], [changed, second]):
        batch = PackedCollator()(pair)
        batch.pop("labels")
        with torch.no_grad():
            outputs.append(model(**batch).logits[0, len(first["input_ids"]) :])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)


def test_without_boundaries_it_is_plain_sdpa_with_the_padding_mask(setup):
    folder, tokenizer, features = setup
    padded = PaddedCollator(tokenizer.pad_token_id)(features)
    inputs = {k: padded[k] for k in ("input_ids", "attention_mask")}
    logits = {}
    for implementation in ("sdpa", PACKED_SDPA):
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=implementation)
        with torch.no_grad():
            logits[implementation] = model.eval()(**inputs).logits
    real = padded["attention_mask"].bool()
    assert torch.allclose(logits["sdpa"][real], logits[PACKED_SDPA][real], atol=1e-6)


# The second row mixes one example past MATMUL_MAX_LEN (SDPA's kernel) with a short one (matmuls).
@pytest.mark.parametrize("lengths", [[5, 17, 9], [600, 40]])
def test_packed_attention_matches_sdpa_per_example_with_gradients(lengths):
    from tunewright.training.attention import packed_sdpa

    torch.manual_seed(0)
    heads, kv_heads, dim, total = 6, 2, 16, sum(lengths)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = heads // kv_heads, True
    module.eval()
    q = torch.randn(1, heads, total, dim, requires_grad=True)
    k = torch.randn(1, kv_heads, total, dim, requires_grad=True)
    v = torch.randn(1, kv_heads, total, dim, requires_grad=True)
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    got, _ = packed_sdpa(module, q, k, v, None, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds)
    parts, start = [], 0
    for n in lengths:
        s = slice(start, start + n)
        out = torch.nn.functional.scaled_dot_product_attention(
            q[:, :, s], k[:, :, s], v[:, :, s], is_causal=True, enable_gqa=True
        )
        parts.append(out.transpose(1, 2))
        start += n
    want = torch.cat(parts, dim=1)
    assert got.shape == (1, total, heads, dim)
    assert torch.allclose(got, want, atol=1e-5)
    weights = torch.randn_like(want)
    got_grads = torch.autograd.grad((got * weights).sum(), (q, k, v))
    want_grads = torch.autograd.grad((want * weights).sum(), (q, k, v))
    for g, w in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(g, w, atol=1e-4)
