"""The chunked head loss is the model's own head + fp32 cross-entropy: same loss, same gradients
for the hidden states and (when trained) the head weight, across chunk boundaries."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from tunewright.training import head_loss
from tunewright.training.head_loss import chunked_head_loss, plain_head


def reference(hidden, weight, targets):
    return F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_loss_and_gradients_match_head_plus_cross_entropy(monkeypatch, chunk_rows):
    vocab, dim, n = 50, 16, 23
    monkeypatch.setattr(head_loss, "CHUNK_ELEMENTS", chunk_rows * vocab)
    torch.manual_seed(0)
    # a spread of logits wide enough that exp() of the smallest underflows in fp32
    hidden = (torch.randn(n, dim) * 30).requires_grad_()
    weight = torch.randn(vocab, dim).requires_grad_()
    targets = torch.randint(0, vocab, (n,))
    got = chunked_head_loss(hidden, weight, targets)
    want = reference(hidden, weight, targets)
    assert torch.isfinite(got)
    assert torch.allclose(got, want, rtol=1e-5), (got, want)
    got_grads = torch.autograd.grad(got * 0.5, (hidden, weight))
    want_grads = torch.autograd.grad(want * 0.5, (hidden, weight))
    for g, w in zip(got_grads, want_grads, strict=True):
        # summed in another order (chunk by chunk): compare against the gradient's scale
        assert (g - w).abs().max() <= 1e-5 * w.abs().max()


def test_frozen_head_gets_no_gradient_and_no_grad_mode_computes_none():
    hidden = torch.randn(5, 8, requires_grad=True)
    weight = torch.randn(11, 8)  # frozen, as under LoRA
    targets = torch.tensor([0, 3, 10, 2, 2])
    loss = chunked_head_loss(hidden, weight, targets)
    loss.backward()
    assert hidden.grad is not None and weight.grad is None
    with torch.no_grad():
        assert torch.allclose(chunked_head_loss(hidden, weight, targets), loss)


def test_under_bf16_autocast_it_matches_the_autocast_reference():
    torch.manual_seed(1)
    hidden = torch.randn(40, 32, dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(300, 32)
    targets = torch.randint(0, 300, (40,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = chunked_head_loss(hidden, weight, targets)
        want = reference(hidden, weight, targets)
    assert got.dtype == torch.float32
    assert torch.allclose(got, want, rtol=1e-3)
    (g,) = torch.autograd.grad(got, hidden)
    (w,) = torch.autograd.grad(want, hidden)
    assert g.dtype == torch.bfloat16
    assert torch.allclose(g.float(), w.float(), rtol=2e-2, atol=2e-2)


def test_plain_head_only_for_a_bias_free_unscaled_linear_head(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert plain_head(model) is model.get_output_embeddings().weight
    model.config.final_logit_softcapping = 30.0
    assert plain_head(model) is None
    model.config.final_logit_softcapping = None
    model.set_output_embeddings(torch.nn.Linear(8, 8, bias=True))
    assert plain_head(model) is None
