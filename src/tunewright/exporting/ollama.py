"""The Ollama Modelfile written beside a GGUF: FROM, TEMPLATE, stop parameters and SYSTEM.

Ollama does not run Jinja; it needs a Go template. `match_template` finds the registry family
(chat_templates.py) whose Jinja text renders exactly what the chat template used in training
renders, on a fixed set of conversations, and the default system prompt the trained template adds
when a conversation has none (SmolLM2 and Qwen do). The Modelfile then takes that family's Go
template and stop tokens, and the default system prompt as SYSTEM. A trained template that matches
no family is refused before any work: a Modelfile with a guessed template would answer
differently from the model that was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunewright.chat_templates import EOS_LITERAL, TEMPLATES, ChatTemplate
from tunewright.errors import TunewrightError

MODELFILE = "Modelfile"
# Conversations the trained template and a family's template must render identically. Each has
# no system message; the same with a system message is checked too.
_CONVERSATIONS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("user", "Hello!"),),
    (("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")),
)
_SYSTEM = "You are terse."
_PLACEHOLDER = "\x00system\x00"


class OllamaTemplateError(TunewrightError):
    """The chat template used in training has no Go template for Ollama."""


@dataclass(frozen=True)
class TemplateMatch:
    template: ChatTemplate
    default_system: str | None  # what the trained template adds when there is no system message


def match_template(tokenizer: Any) -> TemplateMatch:
    """The registry family whose Jinja renders like the tokenizer's (trained) chat template."""
    trained = getattr(tokenizer, "chat_template", None)
    if not isinstance(trained, str) or not trained:
        raise OllamaTemplateError(
            "ollama export: the trained tokenizer has no chat template",
            hint="Set model.chat_template (a registry name) and train again.",
        )
    for template in TEMPLATES.values():
        if template.go_template is None:
            continue
        default_system = _match(tokenizer, trained, template)
        if default_system is not False:
            _check_eos(tokenizer, template)
            return TemplateMatch(template, default_system or None)
    usable = [t.name for t in TEMPLATES.values() if t.go_template]
    raise OllamaTemplateError(
        "ollama export: the chat template used in training matches none of the templates with "
        f"an Ollama (Go) version: {', '.join(usable)}",
        hint="Train with one of them (model.chat_template: NAME), or export --format gguf and "
        "write the Modelfile's TEMPLATE yourself.",
    )


def _match(tokenizer: Any, trained: str, template: ChatTemplate) -> str | bool:
    """The default system prompt ("" for none) when `template` matches `trained`, else False."""
    system_found: str | None = None
    for turns in _CONVERSATIONS:
        conversation = [{"role": r, "content": c} for r, c in turns]
        with_system = [{"role": "system", "content": _SYSTEM}, *conversation]
        if _render(tokenizer, trained, with_system) != _render(
            tokenizer, template.jinja, with_system
        ):
            return False
        got = _render(tokenizer, trained, conversation)
        if got is not None and got == _render(tokenizer, template.jinja, conversation):
            system = ""
        else:
            system = _default_system(tokenizer, template, conversation, got)
        if system is None or system_found not in (None, system):
            return False
        system_found = system
    return system_found or ""


def _default_system(
    tokenizer: Any, template: ChatTemplate, conversation: list[dict[str, str]], got: str | None
) -> str | None:
    """The system text S for which the family's render of [system S, *conversation] is `got`."""
    marked = [{"role": "system", "content": _PLACEHOLDER}, *conversation]
    rendered = _render(tokenizer, template.jinja, marked)
    if got is None or rendered is None or rendered.count(_PLACEHOLDER) != 1:
        return None
    before, after = rendered.split(_PLACEHOLDER)
    if not (got.startswith(before) and got.endswith(after)) or len(got) < len(before + after):
        return None
    system = got[len(before) : len(got) - len(after)]
    check = [{"role": "system", "content": system}, *conversation]
    return system if system and _render(tokenizer, template.jinja, check) == got else None


def _render(tokenizer: Any, jinja: str, conversation: list[dict[str, str]]) -> str | None:
    try:
        text = tokenizer.apply_chat_template(
            conversation, chat_template=jinja, tokenize=False, add_generation_prompt=True
        )
    except Exception:  # a template that refuses a role or a shape simply does not match
        return None
    return text if isinstance(text, str) else None


def _check_eos(tokenizer: Any, template: ChatTemplate) -> None:
    if "eos" in template.stop and tokenizer.eos_token != EOS_LITERAL:
        raise OllamaTemplateError(
            f"ollama export: the {template.name} Go template ends turns with {EOS_LITERAL}, this "
            f"tokenizer's end-of-sequence token is {tokenizer.eos_token}",
            hint="Export --format gguf and write the Modelfile's TEMPLATE yourself.",
        )


def stop_tokens(tokenizer: Any, template: ChatTemplate) -> list[str]:
    return [tokenizer.eos_token if s == "eos" else s for s in template.stop]


def modelfile(gguf_name: str, tokenizer: Any, match: TemplateMatch) -> str:
    """The Modelfile text for `ollama create NAME -f Modelfile` in the GGUF's folder."""
    template = match.template
    assert template.go_template is not None  # match_template only picks families that have one
    lines = [
        f"# Written by tunewright. The chat template used in training is the {template.name} "
        "family;",
        "# TEMPLATE is its Go version, checked against the Jinja text in tunewright's tests.",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{_quoted(template.go_template)}"""',
    ]
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tokenizer, template)]
    if match.default_system:
        lines.append(f'SYSTEM """{_quoted(match.default_system)}"""')
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    if '"""' in text:
        raise OllamaTemplateError(
            'ollama export: the text contains """, which a Modelfile cannot quote',
            hint="Remove the triple quotes from the default system prompt.",
        )
    return text
