"""Unfilled template placeholders in answers: `{{name}}`, `{name}`, `<PLACEHOLDER>`,
`[INSERT ...]`, `TODO`, "Lorem ipsum". An answer is what the model learns to write, so one that
still holds its template's gaps teaches the model to write them. A warning, not a rejection:
the patterns are heuristics, and the user decides.

Only answers are read (assistant turns, the chosen answer of a pair, the judged answer of
feedback). Code in them is left out, since `{name}` and `TODO` are ordinary there: fenced and
inline code in any answer, and the whole answer of a `code` record, which is code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from tunewright.data.records import Record, answer_text

# One pattern per placeholder kind; each match is reported as written.
PATTERNS = (
    re.compile(r"\{\{[^{}\n]{1,60}\}\}"),  # {{name}}: Jinja, Handlebars, Mustache
    # {name}: a str.format field; a letter or backslash before it is LaTeX (\text{name}), and a
    # brace, $ or % is another template language or a doubled brace.
    re.compile(r"(?<![\w\\{$%])\{[A-Za-z_]\w{1,40}\}(?!\})"),
    re.compile(r"<[A-Z][A-Z0-9_ ]{2,40}>"),  # <PLACEHOLDER>, <YOUR NAME>: capitals only
    re.compile(r"\[(?:INSERT|YOUR|ADD|ENTER|PLACEHOLDER)\b[^\]\n]{0,60}\]", re.IGNORECASE),
    re.compile(r"\bTODO\b"),
    re.compile(r"\blorem ipsum\b", re.IGNORECASE),
)
# Every pattern needs one of these; most answers hold none, and one search rules them out.
_ANY = re.compile(r"[{<\[]|TODO|lorem", re.IGNORECASE)
# ```fenced``` blocks (an unclosed fence runs to the end) and `inline` code spans.
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)
# At most this many distinct placeholders are named per record, so details stay one line.
_SHOWN = 3


def find_placeholders(text: str) -> list[str]:
    """The distinct placeholders in `text` outside code, in order of first appearance."""
    if not _ANY.search(text):
        return []
    prose = _CODE.sub(" ", text)
    found = sorted(
        (match.start(), match.group()) for pattern in PATTERNS for match in pattern.finditer(prose)
    )
    return list(dict.fromkeys(placeholder for _, placeholder in found))


def record_placeholders(record: Record) -> list[str]:
    """The distinct placeholders in a record's answers; none for `code` records."""
    if record.get("task") == "code":
        return []
    return find_placeholders(answer_text(record))


def describe(placeholders: list[str]) -> str:
    """A finding's detail: which placeholders the answer holds, the first few named."""
    shown = ", ".join(f'"{p}"' for p in placeholders[:_SHOWN])
    more = f" and {len(placeholders) - _SHOWN} more" if len(placeholders) > _SHOWN else ""
    noun = "placeholder" if len(placeholders) == 1 else "placeholders"
    return f"answer holds unfilled template {noun} {shown}{more}"


def count_placeholders(found: Iterable[Iterable[str]]) -> dict[str, int]:
    """Records per distinct placeholder, most common first, from each record's placeholders."""
    counts = Counter(p for placeholders in found for p in placeholders)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
