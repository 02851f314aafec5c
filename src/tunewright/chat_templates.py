"""The one chat-template registry: per model family, the Jinja text, the Go template Ollama runs
and the end-of-turn tokens.

`model.chat_template` names one of these (or a Jinja file); a named template is used when the
base model's tokenizer has none, so a base model trains in its family's format and the template
is saved beside the weights like any other. Every template here renders each turn the same way
whatever follows it and ends assistant turns with a special token, which the loss mask needs
(chat.py). The Ollama export reads the same entries: its Modelfile TEMPLATE is the family's
`go_template`, checked in the tests against the Jinja text with Go's own text/template.

Go templates follow Ollama's conventions: they range over `.Messages` (role, content; a default
system prompt arrives as a leading system message, from the Modelfile's SYSTEM), always end with
the assistant's header (Ollama renders only to generate), and leave the leading BOS token to the
runtime, which adds it when the GGUF says `add_bos_token` (`bos_first` below). Go's text/template
has no `trim`: where a Jinja template trims message content (llama3, gemma), the two agree only
on content without leading or trailing whitespace, which is what chat clients send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunewright.errors import TunewrightError


class TemplateTokenError(TunewrightError):
    """A named template writes marker tokens the model's tokenizer does not have."""


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    jinja: str
    # Marker tokens the template writes literally; the tokenizer must hold each as one token,
    # else they would be trained as several ordinary ones and never learnt as turn boundaries.
    markers: tuple[str, ...]
    # What ends a turn in generation; "eos" is the tokenizer's own end-of-sequence token.
    stop: tuple[str, ...]
    description: str
    # Ollama's TEMPLATE for this family (Go text/template); None: no Ollama export for it yet.
    go_template: str | None = None
    # The Jinja text starts with `bos_token`, which the Go template leaves to the runtime.
    bos_first: bool = False


_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_QWEN = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" + _CHATML
)
_LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
# Families whose templates have no system role fold it into the first user turn.
_SYSTEM_FIRST = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\\n\\n' %}{% set messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% endif %}"
)
_MISTRAL = (
    _SYSTEM_FIRST + "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ '[INST] ' + (system if loop.first else '') + message['content'] + ' [/INST]' }}"
    "{% endif %}{% endfor %}"
)
_LLAMA2 = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% set messages = messages[1:] %}{% else %}{% set system = '' %}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}"
    "{% else %}{{ bos_token + '[INST] ' + (system if loop.first else '') "
    "+ message['content'] | trim + ' [/INST]' }}{% endif %}{% endfor %}"
)
_GEMMA = (
    _SYSTEM_FIRST + "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\\n' + (system if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
_PHI = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
_ZEPHYR = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Go templates for Ollama (see the module docstring). `{{-` trims the whitespace before it.
_GO_CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)
_GO_LLAMA3 = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# A leading system message is folded into the first turn after it, as the Jinja text does.
_GO_SYSTEM_FIRST = (
    '{{- $first := 0 }}{{ if eq (index .Messages 0).Role "system" }}{{ $first = 1 }}{{ end }}'
    '{{- $system := "" }}{{ if eq $first 1 }}'
    '{{ $system = printf "%s\\n\\n" (index .Messages 0).Content }}{{ end }}'
)
_GO_MISTRAL = (
    _GO_SYSTEM_FIRST + "{{- range $i, $m := .Messages }}{{ if lt $i $first }}"
    '{{ else if eq $m.Role "assistant" }}{{ $m.Content }}</s>'
    "{{ else }}[INST] {{ if eq $i $first }}{{ $system }}{{ end }}{{ $m.Content }} [/INST]"
    "{{ end }}{{ end }}"
)
_GO_GEMMA = (
    _GO_SYSTEM_FIRST + "{{- range $i, $m := .Messages }}{{ if ge $i $first }}<start_of_turn>"
    '{{ if eq $m.Role "assistant" }}model{{ else }}user{{ end }}\n'
    "{{ if eq $i $first }}{{ $system }}{{ end }}{{ $m.Content }}<end_of_turn>\n{{ end }}{{ end }}"
    "<start_of_turn>model\n"
)
_GO_PHI = "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n"

# Templates that end turns with `eos_token` write it literally here: Ollama has no variable for
# it. `EOS_LITERAL` is that text; the Ollama export refuses a tokenizer whose eos differs.
EOS_LITERAL = "</s>"
_GO_ZEPHYR = "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}</s>\n{{ end }}<|assistant|>\n"


TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in (
        ChatTemplate(
            "chatml",
            _CHATML,
            ("<|im_start|>", "<|im_end|>"),
            ("<|im_end|>",),
            "ChatML (<|im_start|>role ... <|im_end|>): SmolLM2, Hermes, many fine-tunes",
            go_template=_GO_CHATML,
        ),
        ChatTemplate(
            "qwen",
            _QWEN,
            ("<|im_start|>", "<|im_end|>"),
            ("<|im_end|>", "<|endoftext|>"),
            "Qwen2/2.5: ChatML, with a default system message when there is none",
            # Ollama: ChatML, the default system message goes into the Modelfile's SYSTEM.
            go_template=_GO_CHATML,
        ),
        ChatTemplate(
            "llama3",
            _LLAMA3,
            ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
            ("<|eot_id|>",),
            "Llama 3, 3.1, 3.2, 3.3 instruct",
            go_template=_GO_LLAMA3,
            bos_first=True,
        ),
        ChatTemplate(
            "llama2",
            _LLAMA2,
            (),
            ("eos",),
            "Llama 2 chat ([INST] ... [/INST], <<SYS>> system block)",
        ),
        ChatTemplate(
            "mistral",
            _MISTRAL,
            (),
            ("eos",),
            "Mistral / Mixtral instruct ([INST] ... [/INST]; system folded into the first turn)",
            go_template=_GO_MISTRAL,
            bos_first=True,
        ),
        ChatTemplate(
            "gemma",
            _GEMMA,
            ("<start_of_turn>", "<end_of_turn>"),
            ("<end_of_turn>",),
            "Gemma 1/2/3 (user and model turns; system folded into the first turn)",
            go_template=_GO_GEMMA,
            bos_first=True,
        ),
        ChatTemplate(
            "phi",
            _PHI,
            ("<|user|>", "<|assistant|>", "<|end|>"),
            ("<|end|>",),
            "Phi-3 / Phi-3.5 (<|user|> ... <|end|>)",
            go_template=_GO_PHI,
        ),
        ChatTemplate(
            "zephyr",
            _ZEPHYR,
            (),
            ("eos",),
            "Zephyr (<|user|> ... </s>)",
            go_template=_GO_ZEPHYR,
        ),
    )
}


def get_template(name: str) -> ChatTemplate | None:
    return TEMPLATES.get(name)


@dataclass
class TemplateChoice:
    """Which chat template a run uses, for the manifest: the tokenizer's own, a file's, or a
    registry entry's (with its name and Jinja text)."""

    source: Literal["tokenizer", "file", "registry"]
    name: str | None = None
    path: str | None = None
    jinja: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def apply_chat_template(
    tokenizer: Any, setting: str | None, resolve: Callable[[str], Path]
) -> TemplateChoice:
    """Set the tokenizer's chat template from `model.chat_template` (in place): a file replaces
    the tokenizer's own; a registry name supplies one only when the tokenizer has none.
    `resolve` turns a relative path into one against the config's folder."""
    if not setting:
        return TemplateChoice("tokenizer")
    template = get_template(setting)
    if template is None:
        path = resolve(setting)
        tokenizer.chat_template = path.read_text(encoding="utf-8")
        return TemplateChoice("file", path=str(path))
    if getattr(tokenizer, "chat_template", None):
        return TemplateChoice(
            "tokenizer",
            name=template.name,
            note=f"the tokenizer has its own chat template; registry template "
            f"'{template.name}' applies only to tokenizers without one",
        )
    missing = [m for m in template.markers if not _is_one_token(tokenizer, m)]
    if missing:
        raise TemplateTokenError(
            f"model.chat_template: {template.name} writes {', '.join(missing)}, which the "
            "model's tokenizer does not hold as single tokens",
            hint="Name the template of the model's own family "
            f"({', '.join(TEMPLATES)}), or give a Jinja file written for this tokenizer.",
        )
    tokenizer.chat_template = template.jinja
    return TemplateChoice("registry", name=template.name, jinja=template.jinja)


def _is_one_token(tokenizer: Any, text: str) -> bool:
    ids = tokenizer.convert_tokens_to_ids([text])
    return bool(ids) and ids[0] is not None and ids[0] != tokenizer.unk_token_id
