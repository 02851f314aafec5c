"""The chat-template registry: every template passes the loss-mask check, and a name applies
only where the tokenizer has no template of its own."""

from __future__ import annotations

import pytest

from tunewright.chat import verify_loss_mask
from tunewright.chat_templates import (
    TEMPLATES,
    TemplateTokenError,
    apply_chat_template,
)

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome, of course."},
]


@pytest.fixture
def bare_tokenizer(tiny_model_dir):
    """The tiny model's tokenizer without a chat template, as a base model's often is."""
    from tunewright.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = None
    return tokenizer


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_registry_template_separates_assistant_turns(bare_tokenizer, name):
    template = TEMPLATES[name]
    # The family's markers as special tokens (a real model of that family has them).
    bare_tokenizer.add_special_tokens({"additional_special_tokens": list(template.markers)})
    choice = apply_chat_template(bare_tokenizer, name, lambda p: p)
    assert (choice.source, choice.name, choice.jinja) == ("registry", name, template.jinja)
    verify_loss_mask(bare_tokenizer, [CONVERSATION, CONVERSATION[1:3]])
    text = bare_tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert "Answer briefly." in text and "Rome, of course." in text
    stops = [bare_tokenizer.eos_token if s == "eos" else s for s in template.stop]
    assert any(stop in text for stop in stops), f"{name}: no stop token in {text!r}"


def test_a_name_keeps_the_tokenizers_own_template_and_a_file_replaces_it(tiny_model_dir, tmp_path):
    from tunewright.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    own = tokenizer.chat_template
    choice = apply_chat_template(tokenizer, "llama3", lambda p: tmp_path / p)
    assert tokenizer.chat_template == own
    assert choice.source == "tokenizer" and "has its own chat template" in (choice.note or "")

    file = tmp_path / "t.jinja"
    file.write_text("{% for m in messages %}{{ m['content'] }}<|im_end|>{% endfor %}")
    choice = apply_chat_template(tokenizer, "t.jinja", lambda p: tmp_path / p)
    assert (choice.source, tokenizer.chat_template) == ("file", file.read_text())


def test_a_template_whose_markers_the_tokenizer_lacks_is_refused(bare_tokenizer):
    with pytest.raises(TemplateTokenError) as caught:
        apply_chat_template(bare_tokenizer, "llama3", lambda p: p)
    assert "<|start_header_id|>" in caught.value.message
    assert bare_tokenizer.chat_template is None


def test_validate_accepts_a_registry_name_and_names_what_exists(run_cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  chat_template: gemma\n")
    code, _, err = run_cli("validate", str(config))
    assert code == 0, err
    config.write_text("model:\n  chat_template: gemma9\n")
    code, _, err = run_cli("validate", str(config))
    assert code == 1
    assert "model.chat_template: 'gemma9' is not a registry template (chatml, qwen" in err
