"""The Modelfile's TEMPLATE, rendered by Go's own text/template with the data Ollama passes, gives
the same prompts as the chat template used in training, rendered by Jinja: for the embedded
model's template (ChatML with a default system prompt), Llama-3 and Mistral, and every other
registry family with a Go template."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.support.go_template import build_renderer, render

from tunewright.chat_templates import TEMPLATES
from tunewright.exporting.ollama import OllamaTemplateError, match_template, modelfile

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi there"}],
    [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": 'And {{ 3+3 }}?\nShow $work, "quoted" & <b>tags</b>.'},
    ],
    [
        {"role": "system", "content": "Be terse.\nVery terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another, ünïcödé ✓"},
    ],
]
# Family -> the tokenizer's special tokens (bos, eos, markers), as a model of that family has.
FAMILY_TOKENS = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "qwen": ("<|endoftext|>", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral": ("<s>", "</s>"),
    "gemma": ("<bos>", "<eos>"),
    "phi": ("<s>", "<|endoftext|>"),
    "zephyr": ("<s>", "</s>"),
}


@pytest.fixture(scope="module")
def go_renderer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_renderer(tmp_path_factory.mktemp("go"))


def family_tokenizer(tiny_model_dir: Path, name: str, jinja: str):
    """The tiny tokenizer with a family's special tokens and `jinja` as its trained template."""
    from tunewright.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    bos, eos = FAMILY_TOKENS[name]
    markers = list(TEMPLATES[name].markers)
    tokenizer.add_special_tokens(
        {"bos_token": bos, "eos_token": eos, "additional_special_tokens": markers}
    )
    tokenizer.chat_template = jinja
    return tokenizer


def embedded_chat_template() -> str:
    """The chat template inside the embedded model's GGUF (no conversion needed)."""
    from gguf import GGUFReader

    from tunewright.models import EMBEDDED, package_source

    source = package_source(EMBEDDED["smollm2-135m-instruct"])
    assert source is not None, "the embedded model package is not installed"
    template = GGUFReader(source).fields["tokenizer.chat_template"].contents()
    assert isinstance(template, str)
    return template


def modelfile_parts(text: str) -> tuple[str, str | None, list[str]]:
    """TEMPLATE, SYSTEM and the stop parameters of a Modelfile."""
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M)
    system = re.search(r'^SYSTEM """(.*?)"""$', text, re.S | re.M)
    stops = re.findall(r'^PARAMETER stop "(.*)"$', text, re.M)
    assert template is not None, text
    return template.group(1), system.group(1) if system else None, stops


def ollama_prompts(binary: Path, text: str, tokenizer, bos_first: bool) -> list[str]:
    """What Ollama sends the model: the Modelfile's SYSTEM as a leading system message when the
    conversation has none, the TEMPLATE rendered by Go, and the BOS the runtime adds."""
    template, system, _ = modelfile_parts(text)
    conversations = [
        c
        if c[0]["role"] == "system" or system is None
        else [{"role": "system", "content": system}, *c]
        for c in CONVERSATIONS
    ]
    bos = tokenizer.bos_token if bos_first else ""
    return [bos + p for p in render(binary, template, conversations)]


def jinja_prompts(tokenizer) -> list[str]:
    return [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
        for c in CONVERSATIONS
    ]


def test_embedded_chatml_template_renders_the_same_in_go(go_renderer, tiny_model_dir):
    tokenizer = family_tokenizer(tiny_model_dir, "chatml", embedded_chat_template())
    match = match_template(tokenizer)
    assert match.template.name == "chatml"
    assert match.default_system == (
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    )
    text = modelfile("model-q8_0.gguf", tokenizer, match)
    _, system, stops = modelfile_parts(text)
    assert (system, stops) == (match.default_system, ["<|im_end|>"])
    assert "FROM ./model-q8_0.gguf" in text.splitlines()
    expected = jinja_prompts(tokenizer)
    assert "SmolLM" in expected[0] and "SmolLM" not in expected[1]  # default only without system
    assert ollama_prompts(go_renderer, text, tokenizer, bos_first=False) == expected


@pytest.mark.parametrize("name", [n for n, t in TEMPLATES.items() if t.go_template])
def test_registry_go_template_renders_like_its_jinja(go_renderer, tiny_model_dir, name):
    template = TEMPLATES[name]
    tokenizer = family_tokenizer(tiny_model_dir, name, template.jinja)
    match = match_template(tokenizer)
    # Qwen is ChatML plus a default system prompt: Ollama's ChatML template and a SYSTEM line.
    assert match.template.name == ("chatml" if name == "qwen" else name)
    assert (match.default_system is not None) == (name == "qwen")
    text = modelfile("model.gguf", tokenizer, match)
    _, _, stops = modelfile_parts(text)
    expected_stops = [tokenizer.eos_token if s == "eos" else s for s in match.template.stop]
    assert stops == expected_stops
    got = ollama_prompts(go_renderer, text, tokenizer, template.bos_first)
    assert got == jinja_prompts(tokenizer)


def test_a_go_template_that_drops_the_system_prompt_is_caught(go_renderer, tiny_model_dir):
    """The comparison is sharp: Mistral's Go template without its system folding differs."""
    template = TEMPLATES["mistral"]
    tokenizer = family_tokenizer(tiny_model_dir, "mistral", template.jinja)
    text = modelfile("model.gguf", tokenizer, match_template(tokenizer))
    broken = text.replace("{{ $system }}", "")
    assert ollama_prompts(go_renderer, broken, tokenizer, True) != jinja_prompts(tokenizer)


def test_a_template_outside_the_registry_is_refused(tiny_model_dir):
    tokenizer = family_tokenizer(
        tiny_model_dir, "chatml", "{% for m in messages %}### {{ m['content'] }}\n{% endfor %}"
    )
    with pytest.raises(OllamaTemplateError, match="matches none"):
        match_template(tokenizer)


def test_missing_go_fails_with_the_install_command(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AssertionError, match="apt-get install -y golang-go"):
        build_renderer(tmp_path)
