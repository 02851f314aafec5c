"""Malformed data for fuzzing the data stage: case generators and the one check every case passes.

tests/integration/test_data_fuzz.py runs a bounded, deterministic sample in CI and
bench/fuzz_data.py runs thousands; both use `CASES` (a Hypothesis strategy per input format) and
`check_case`, so a crash either finds can be replayed by the other.

A `Case` is the files of one input (JSONL, JSON, CSV, TSV, Parquet, a folder of files, or a
`save_to_disk` dataset), built from rows of every known format, then damaged: wrong types, huge
fields, deep nesting, NaN/Infinity, duplicate keys, lone surrogates, NUL bytes, other encodings
and BOMs, truncation, spliced-in binary garbage, empty files. `check_case` runs the data stage
on it (`prepare_data`, which runs what `data validate` runs, then writes the run folder), prints
the report as `data validate` does (into a captured console) and returns what went wrong, if
anything:

- an exception that is not a `TunewrightError` (a traceback for the user) is a crash;
- a `TunewrightError` must name the input file (with its line when it is about a position);
- otherwise the counts must add up: rows read = train + eval + rejected, per file too, and
  `rejected.jsonl` holds every rejected row with its `file:line` and a reason;
- where the generator knows how many rows it wrote (no file-level damage), that many were read.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import datetime
import io
import json
import re
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "folder", "saved")

# ---------------------------------------------------------------------------------------------
# Values: what json.dumps can write, plus JSON text it cannot (Raw) and objects with repeated
# keys (Dup).


@dataclass(frozen=True)
class Raw:
    """JSON text written as it is: deep nesting, 5,000-digit numbers, NaN, broken syntax."""

    text: str


@dataclass(frozen=True)
class Dup:
    """A JSON object whose keys may repeat (Python's json keeps the last)."""

    items: tuple[tuple[str, Any], ...]


def dumps(value: Any, ascii_only: bool = True) -> str:
    """JSON text of `value`, Raw and Dup included; NaN and Infinity as Python writes them."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Dup):
        pairs = (
            f"{json.dumps(k, ensure_ascii=ascii_only)}: {dumps(v, ascii_only)}"
            for k, v in value.items
        )
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, dict):
        return dumps(Dup(tuple(value.items())), ascii_only)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def plain(value: Any) -> Any:
    """`value` as Python reads its JSON (Dup keeps the last key; Raw stays text): for tables."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Dup):
        return {k: plain(v) for k, v in value.items}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def deep(depth: int, kind: str = "[") -> str:
    """Nested arrays or objects `depth` levels deep, as text (json.dumps would recurse)."""
    if kind == "[":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


WORDS = "the model reads every line and learns to answer with care over time".split()
WEIRD_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ufeff",
    "\ufeffhello",
    "\ud800",  # a lone surrogate: legal in a Python str and in JSON escapes, not in UTF-8
    "x\udfffy",
    "é",
    "Ã©tÃ© mojibake",
    "\u2028",
    "\x85",
    "\r",
    "\n\n",
    '"',
    ",",
    "\t",
    "[bold]markup[/bold]",
    "[/]",
    "<|im_end|>",
    "<|im_start|>user",
    "{{ raise_exception('x') }}",
    "NaN",
    "\x1b[31m",
    "🙂",
    "\U0010ffff",
    "\ufffd",
    "[",
    '{"role": "user"',
]
RAW_FRAGMENTS = [
    Raw(deep(60)),
    Raw(deep(985)),  # just inside the recursion limit: readable, but deep everywhere after
    Raw(deep(985, "{")),
    Raw(deep(100_000)),  # past Python's recursion limit
    Raw(deep(100_000, "{")),
    Raw("9" * 5000),  # past Python's 4,300-digit limit for int()
    Raw("-" + "1" * 4400),
    Raw("1e999"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw('"\\ud800"'),
    Raw('"\\u0000"'),
    Raw('"a\x00b"'),  # a raw control character inside a string: invalid JSON
    Raw('"unterminated'),
    Raw("[1, 2"),
    Raw("{"),
    Raw("tru"),
]
DEEP_STRINGS = [deep(100_000), deep(100_000, "{"), "[" + "9" * 5000 + "]", deep(30)]
HUGE_SIZES = (20_000, 140_000)  # the second is past csv's default field limit (131,072)
KEYS = (
    "messages conversations instruction output input system history text label prompt "
    "completion chosen rejected document summary tools role content from value "
    "preferred_output non_preferred_output"
).split()


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each `weight` times as likely (`one_of` counts a repeated
    strategy once)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


answers = st.lists(st.sampled_from(WORDS), min_size=5, max_size=12).map(" ".join)
# Mostly plain words, so that many rows pass the checks and reach the split.
short_texts = weighted((6, answers), (1, st.text(max_size=24)), (1, st.sampled_from(WEIRD_TEXTS)))
texts = weighted((8, short_texts), (1, st.sampled_from(DEEP_STRINGS)))
huge_texts = st.builds(
    lambda n, word: (word + " ") * (n // (len(word) + 1)),
    st.sampled_from(HUGE_SIZES),
    st.sampled_from(["x", "word", "é", "line\n"]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | st.integers() | floats | texts
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
odd_values = st.one_of(
    json_values,
    st.sampled_from(RAW_FRAGMENTS),
    huge_texts,
    st.builds(
        lambda items: Dup(tuple(items)),
        st.lists(st.tuples(st.sampled_from(KEYS), json_values), max_size=4),
    ),
)

# ---------------------------------------------------------------------------------------------
# Rows: every format the loader detects, well-formed or damaged.

roles = st.sampled_from(["system", "user", "assistant", "tool"]) | st.sampled_from(
    ["bot", "", None, 5, "USER"]
)
arguments = st.sampled_from(['{"q": 1}', "{bad", *DEEP_STRINGS]) | json_values
function = st.fixed_dictionaries(
    {"name": st.sampled_from(["lookup", "", "x"]), "arguments": arguments}
)
tool_call = st.fixed_dictionaries(
    {"id": st.text(max_size=6), "type": st.just("function"), "function": function | json_values}
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles, "content": texts | odd_values},
        optional={
            "tool_calls": st.lists(tool_call, max_size=2) | json_values,
            "weight": st.sampled_from([0, 1, "x", None]),
            "name": texts,
        },
    ),
    max_size=4,
)
pairs = st.builds(
    lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
    texts,
    answers,
)
tools = st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": json_values}))
speakers = st.sampled_from(["human", "gpt", "system", "function_call", "observation", "nobody", ""])
turns = st.lists(
    st.fixed_dictionaries(
        {
            "from": speakers,
            "value": texts | st.sampled_from(['{"name": "f", "arguments": {}}', "{"]),
        }
    ),
    max_size=4,
)
sharegpt_pairs = st.builds(
    lambda q, a: [{"from": "human", "value": q}, {"from": "gpt", "value": a}], texts, answers
)
# One strategy per format `normalize` detects, each mostly well-formed.
FORMAT_ROWS = {
    "alpaca": st.fixed_dictionaries(
        {"instruction": texts, "output": answers},
        optional={
            "input": texts,
            "system": texts,
            "history": st.lists(st.tuples(texts, answers), max_size=2) | odd_values,
        },
    ),
    "openai": st.fixed_dictionaries(
        {"messages": weighted((2, pairs), (1, messages))}, optional={"tools": tools | odd_values}
    ),
    "sharegpt": st.fixed_dictionaries(
        {"conversations": sharegpt_pairs | turns}, optional={"system": texts, "tools": tools}
    ),
    "preference": st.fixed_dictionaries(
        {"prompt": texts | pairs, "chosen": answers | pairs, "rejected": answers | pairs}
    ),
    "preference/sharegpt": st.fixed_dictionaries(
        {
            "conversations": sharegpt_pairs | turns,
            "chosen": st.builds(lambda a: {"from": "gpt", "value": a}, answers) | answers,
            "rejected": st.builds(lambda a: {"from": "gpt", "value": a}, answers) | odd_values,
        }
    ),
    "preference/openai-dpo": st.fixed_dictionaries(
        {
            "input": st.fixed_dictionaries({"messages": messages}) | odd_values,
            "preferred_output": st.lists(
                st.builds(lambda a: {"role": "assistant", "content": a}, answers), max_size=2
            ),
            "non_preferred_output": messages | odd_values,
        }
    ),
    "preference/hh": st.fixed_dictionaries(
        {
            "chosen": st.builds(lambda q, a: f"\n\nHuman: {q}\n\nAssistant: {a}", texts, answers)
            | texts,
            "rejected": st.builds(lambda q, a: f"\n\nHuman: {q}\n\nAssistant: {a}", texts, answers)
            | odd_values,
        }
    ),
    "feedback": st.fixed_dictionaries(
        {
            "messages": weighted((2, pairs), (1, messages)),
            "label": st.booleans() | st.sampled_from(["true", "False", "yes", 1, None]),
        }
    ),
    "feedback/trl": st.fixed_dictionaries(
        {
            "prompt": texts | pairs,
            "completion": answers | pairs,
            "label": st.booleans() | odd_values,
        }
    ),
    "code": st.fixed_dictionaries({"prompt": texts, "completion": answers}),
    "classification": st.fixed_dictionaries(
        {"text": texts, "label": st.sampled_from(["pos", "neg", "[/]", "[b]pos"]) | short_texts}
    ),
    "summarization": st.fixed_dictionaries({"document": texts, "summary": answers}),
    "text": st.fixed_dictionaries({"text": answers | texts}),
}


def _with(row: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**row, key: value}


def _without(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}


def _duplicated(row: dict[str, Any], key: str, value: Any) -> Dup:
    return Dup((*row.items(), (key, value)))


def variants(good: st.SearchStrategy[dict], objects_only: bool) -> st.SearchStrategy[Any]:
    """`good` rows, and the same rows with a field of the wrong type, a field missing, a
    repeated key; rows of anything; and (unless `objects_only`) JSON values that are no row."""
    keys = st.sampled_from(KEYS)
    damaged = st.one_of(
        st.builds(_with, good, keys, odd_values),
        st.builds(_without, good, keys),
        st.builds(_duplicated, good, keys, odd_values),
        st.dictionaries(keys | st.text(max_size=6), odd_values, max_size=4),
    )
    if not objects_only:
        damaged |= json_values | st.sampled_from(RAW_FRAGMENTS)
    return weighted((3, good), (1, damaged))


def file_rows(max_size: int, objects_only: bool = False) -> st.SearchStrategy[list[Any]]:
    """The rows of one file: mostly of one format, as real files are."""
    formats = st.sampled_from(list(FORMAT_ROWS.values()))
    return formats.flatmap(lambda good: st.lists(variants(good, objects_only), max_size=max_size))


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Table:
    """Columns for a Parquet file or a saved dataset: (name, a key of ARROW_VALUES, values)."""

    columns: tuple[tuple[str, str, tuple[Any, ...]], ...]
    rows: int


@dataclass
class Saved:
    """A `save_to_disk` dataset: one Dataset, or a DatasetDict of splits; then damaged."""

    splits: tuple[tuple[str, Table], ...]  # split "" = a plain Dataset
    damage: str | None = None


@dataclass
class Case:
    """The files of one input and the paths a config lists (relative to the case folder)."""

    fmt: str
    files: dict[str, bytes | Saved | None]  # None: an empty folder
    train: list[str]
    eval: list[str] = field(default_factory=list)
    expected_rows: int | None = None  # rows the loader must read, when the generator knows
    lenient: bool = False  # gates relaxed, so that kept rows reach train.jsonl and eval.jsonl


# --- damage to a file's bytes ----------------------------------------------------------------

DAMAGES = ("truncate", "splice", "nul", "flip", "garbage", "empty")


@st.composite
def damages(draw: st.DrawFn) -> tuple[str, float, bytes] | None:
    """None (most cases: the file as written) or (kind, position 0..1, garbage bytes)."""
    if draw(st.integers(0, 2)):
        return None
    return (
        draw(st.sampled_from(DAMAGES)),
        draw(st.floats(0, 1)),
        draw(st.binary(min_size=1, max_size=64)),
    )


def damaged(data: bytes, damage: tuple[str, float, bytes] | None) -> bytes:
    if damage is None:
        return data
    kind, where, garbage = damage
    at = int(len(data) * where)
    if kind == "truncate":
        return data[:at]
    if kind == "splice":
        return data[:at] + garbage + data[at:]
    if kind == "nul":
        return data[:at] + b"\x00" * len(garbage) + data[at:]
    if kind == "flip":  # overwrite bytes in place: structure intact, contents broken
        return data[:at] + garbage + data[at + len(garbage) :]
    if kind == "garbage":
        return garbage
    return b""


# --- text encodings --------------------------------------------------------------------------

ENCODINGS = (
    "utf-8",
    "utf-8",
    "utf-8",
    "utf-8-sig",
    "utf-16",
    "utf-16-be-bom",
    "utf-16-le",
    "latin-1",
    "mixed-latin-1",
)


def encoded(lines: list[str], encoding: str, ending: str, final: bool) -> bytes:
    """`lines` joined by `ending` in `encoding`; lone surrogates become invalid bytes on
    purpose, and `mixed-latin-1` writes every other line in latin-1."""
    if encoding == "mixed-latin-1":
        chunks = [
            line.encode(
                "latin-1" if i % 2 else "utf-8", errors="replace" if i % 2 else "surrogatepass"
            )
            for i, line in enumerate(lines)
        ]
        sep = ending.encode()
        return sep.join(chunks) + (sep if final and lines else b"")
    text = ending.join(lines) + (ending if final and lines else "")
    if encoding == "utf-8-sig":
        return codecs.BOM_UTF8 + text.encode("utf-8", errors="surrogatepass")
    if encoding == "utf-16":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le", errors="surrogatepass")
    if encoding == "utf-16-be-bom":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be", errors="surrogatepass")
    if encoding == "utf-16-le":
        return text.encode("utf-16-le", errors="surrogatepass")
    if encoding == "latin-1":
        return text.encode("latin-1", errors="replace")
    return text.encode("utf-8", errors="surrogatepass")


def _detectable(encoding: str, text: str) -> bool:
    """Whether the loader can tell this encoding from the bytes: UTF-16 without a BOM only by
    the NUL high bytes of its first two characters."""
    return encoding != "utf-16-le" or (len(text) >= 2 and all(0 < ord(c) < 256 for c in text[:2]))


# --- JSONL -----------------------------------------------------------------------------------


@st.composite
def jsonl_files(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A JSONL file and how many rows it holds (None when damage makes that unknowable)."""
    units = [("row", row) for row in draw(file_rows(10))]
    other_lines = st.text(max_size=30).map(lambda t: ("junk", t)) | st.sampled_from(
        ["", "   ", "\t"]
    ).map(lambda t: ("blank", t))
    for unit in draw(st.lists(other_lines, max_size=3)):
        units.insert(draw(st.integers(0, len(units))), unit)
    ascii_only = draw(st.booleans())
    lines = []
    for kind, value in units:
        if kind == "row":
            lines.append(dumps(value, ascii_only))
        elif kind == "junk":  # never blank, never a newline, never read as UTF-16 by its NULs
            lines.append("#!" + re.sub(r"[\r\n]", " ", value))
        else:
            lines.append(value)
    encoding = draw(st.sampled_from(ENCODINGS))
    data = encoded(lines, encoding, draw(st.sampled_from(["\n", "\r\n"])), draw(st.booleans()))
    damage = draw(damages())
    expected = sum(1 for line in lines if line.strip())  # blank lines are not rows
    if not _detectable(encoding, "\n".join(lines)):
        expected = None
    return damaged(data, damage), expected if damage is None else None


@st.composite
def jsonl_cases(draw: st.DrawFn) -> Case:
    data, expected = draw(jsonl_files())
    name = draw(st.sampled_from(["train.jsonl", "train.ndjson", "TRAIN.JSONL"]))
    return Case("jsonl", {name: data}, [name], expected_rows=expected)


# --- JSON ------------------------------------------------------------------------------------


@st.composite
def json_files(draw: st.DrawFn) -> tuple[bytes, int | None]:
    items = draw(file_rows(8))
    ascii_only = draw(st.booleans())
    shape = draw(st.sampled_from(["array", "array", "pretty", "wrapped", "by_id", "scalar"]))
    if shape == "array":
        text = "[" + ", ".join(dumps(v, ascii_only) for v in items) + "]"
    elif shape == "pretty":
        text = "[\n" + ",\n".join("  " + dumps(v, ascii_only) for v in items) + "\n]\n"
    elif shape == "wrapped":
        text = '{"data": [' + ", ".join(dumps(v, ascii_only) for v in items) + "]}"
    elif shape == "by_id":
        text = (
            "{" + ", ".join(f'"id{i}": {dumps(v, ascii_only)}' for i, v in enumerate(items)) + "}"
        )
    else:
        text = dumps(draw(json_values), ascii_only)
    encoding = draw(st.sampled_from(ENCODINGS))
    data = encoded(text.split("\n"), encoding, "\n", False)
    damage = draw(damages())
    known = damage is None and shape != "scalar" and _detectable(encoding, text)
    return damaged(data, damage), len(items) if known else None


@st.composite
def json_cases(draw: st.DrawFn) -> Case:
    data, expected = draw(json_files())
    return Case("json", {"train.json": data}, ["train.json"], expected_rows=expected)


# --- CSV and TSV -----------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A CSV cell: text as it is, anything else as its JSON (how nested fields travel in CSV)."""
    if value is None:
        return ""
    if isinstance(value, (str, Raw)):
        return value.text if isinstance(value, Raw) else value
    return dumps(value)


@st.composite
def delimited_files(draw: st.DrawFn, delimiter: str) -> tuple[bytes, int | None]:
    if draw(st.booleans()):  # rows of known formats, a column per key
        records = [
            plain(r) if isinstance(r, Dup) else r for r in draw(file_rows(8, objects_only=True))
        ]
        header = list(dict.fromkeys(k for r in records for k in r))
        table = [[_cell(r.get(k)) for k in header] for r in records]
    else:  # any header (repeated names included) and rows of any width
        header = draw(st.lists(st.sampled_from(KEYS) | st.text(max_size=6), max_size=4))
        table = draw(
            st.lists(st.lists(texts | huge_texts | odd_values.map(_cell), max_size=5), max_size=8)
        )
        table = [[_cell(c) for c in r] for r in table]
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\r\n", "\n"]))
    )
    writer.writerow(header)
    writer.writerows(table)
    encoding = draw(st.sampled_from(ENCODINGS))
    text = buffer.getvalue()
    data = encoded(text.split("\n"), encoding, "\n", False)
    damage = draw(damages())
    known = damage is None and any(header) and _detectable(encoding, text)
    return damaged(data, damage), sum(1 for r in table if r) if known else None


@st.composite
def delimited_cases(draw: st.DrawFn, fmt: str) -> Case:
    data, expected = draw(delimited_files("\t" if fmt == "tsv" else ","))
    name = f"train.{fmt}"
    return Case(fmt, {name: data}, [name], expected_rows=expected)


# --- Parquet and saved datasets --------------------------------------------------------------

simple_texts = st.text(max_size=12) | answers
ARROW_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": short_texts.filter(lambda t: not re.search(r"[\ud800-\udfff]", t)),
    "large_string": answers,
    "int64": st.integers(-(2**63), 2**63 - 1),
    "float64": floats,
    "bool": st.booleans(),
    "binary": st.binary(max_size=16),
    "list_string": st.lists(simple_texts, max_size=3),
    "messages": st.builds(
        lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
        answers,
        answers,
    )
    | st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "x"]), "content": simple_texts}
        ),
        max_size=3,
    ),
    "turns": st.builds(
        lambda q, a: [{"from": "human", "value": q}, {"from": "gpt", "value": a}],
        answers,
        answers,
    )
    | st.lists(st.fixed_dictionaries({"from": speakers, "value": simple_texts}), max_size=3),
    "struct": st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": simple_texts}
    ),
    "nested": st.lists(st.lists(st.lists(st.integers(-5, 5), max_size=2), max_size=2), max_size=2),
    "timestamp": st.datetimes(datetime.datetime(1970, 1, 1), datetime.datetime(2100, 1, 1)),
    "date": st.dates(datetime.date(1970, 1, 1), datetime.date(2100, 1, 1)),
    "decimal": st.decimals(-(10**6), 10**6, places=2, allow_nan=False, allow_infinity=False),
    "duration": st.timedeltas(datetime.timedelta(0), datetime.timedelta(days=9)),
    "null": st.none(),
}
# Types `datasets` can save; Parquet takes them all.
SAVED_TYPES = tuple(
    (
        "string large_string int64 float64 bool binary list_string messages turns struct "
        "nested timestamp date null"
    ).split()
)


def arrow_type(name: str) -> Any:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return {
        "string": pa.string(),
        "large_string": pa.large_string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "binary": pa.binary(),
        "list_string": pa.list_(pa.string()),
        "messages": pa.list_(message),
        "turns": pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())])),
        "struct": message,
        "nested": pa.list_(pa.list_(pa.list_(pa.int64()))),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
        "decimal": pa.decimal128(12, 2),
        "duration": pa.duration("us"),
        "null": pa.null(),
    }[name]


def arrow_table(table: Table) -> Any:
    import pyarrow as pa

    arrays = [pa.array(list(values), type=arrow_type(kind)) for _, kind, values in table.columns]
    names = [name for name, _, _ in table.columns]
    if not arrays:
        return pa.table({})  # no columns: no rows either
    return pa.Table.from_arrays(arrays, names=names)


# The columns of each format `normalize` detects, as a table holds them.
FORMAT_COLUMNS = {
    "alpaca": (("instruction", "large_string"), ("output", "large_string")),
    "openai": (("messages", "messages"),),
    "sharegpt": (("conversations", "turns"),),
    "preference": (("prompt", "string"), ("chosen", "large_string"), ("rejected", "string")),
    "preference/hh": (("chosen", "large_string"), ("rejected", "string")),
    "feedback/trl": (("prompt", "string"), ("completion", "string"), ("label", "bool")),
    "feedback": (("messages", "messages"), ("label", "bool")),
    "code": (("prompt", "string"), ("completion", "large_string")),
    "classification": (("text", "string"), ("label", "string")),
    "summarization": (("document", "string"), ("summary", "large_string")),
    "text": (("text", "large_string"),),
}


@st.composite
def tables(draw: st.DrawFn, saved: bool) -> Table:
    """Half the time a format's columns, then any columns of any types; values may be null.
    For a saved dataset (`saved`), only the types and column names `datasets` can store."""
    types = SAVED_TYPES if saved else tuple(ARROW_VALUES)
    name = st.sampled_from(KEYS) | (
        st.from_regex(r"[a-z_]{1,6}", fullmatch=True) if saved else st.text(max_size=6)
    )
    kinds = st.sampled_from(types)
    columns = list(draw(st.sampled_from([(), *FORMAT_COLUMNS.values()])))
    columns += draw(st.lists(st.tuples(name, kinds), max_size=4 - len(columns)))
    if saved:  # unique names, and at least one row: `datasets` cannot load an empty dataset
        columns = list({n: (n, kind) for n, kind in reversed(columns)}.values())[::-1]
        columns = columns or [("text", "large_string")]
    count = draw(st.integers(1 if saved else 0, 8)) if columns else 0
    filled = []
    for name_, kind in columns:
        cells = weighted((3, ARROW_VALUES[kind]), (1, st.none()))
        values = draw(st.lists(cells, min_size=count, max_size=count))
        filled.append((name_, kind, tuple(values)))
    return Table(tuple(filled), count)


@st.composite
def parquet_files(draw: st.DrawFn) -> tuple[bytes, int | None]:
    import pyarrow.parquet as pq

    table = draw(tables(saved=False))
    buffer = io.BytesIO()
    pq.write_table(
        arrow_table(table), buffer, compression=draw(st.sampled_from(["snappy", "none", "zstd"]))
    )
    damage = draw(damages())
    return damaged(buffer.getvalue(), damage), table.rows if damage is None else None


@st.composite
def parquet_cases(draw: st.DrawFn) -> Case:
    data, expected = draw(parquet_files())
    return Case("parquet", {"train.parquet": data}, ["train.parquet"], expected_rows=expected)


FILE_KINDS = {
    "jsonl": jsonl_files,
    "json": json_files,
    "csv": lambda: delimited_files(","),
    "tsv": lambda: delimited_files("\t"),
    "parquet": parquet_files,
}
SAVED_DAMAGES = tuple(
    (
        "drop_arrow truncate_arrow garbage_arrow flip_arrow bad_state bad_info drop_state bad_dict"
    ).split()
)


@st.composite
def saved_datasets(draw: st.DrawFn) -> tuple[Saved, int | None]:
    if draw(st.booleans()):
        splits = (("", draw(tables(saved=True))),)
    else:
        names = draw(
            st.lists(
                st.sampled_from(["train", "test", "validation"]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        )
        splits = tuple((name, draw(tables(saved=True))) for name in names)
    damage = draw(weighted((2, st.none()), (1, st.sampled_from(SAVED_DAMAGES))))
    return Saved(splits, damage), sum(t.rows for _, t in splits) if damage is None else None


@st.composite
def saved_cases(draw: st.DrawFn) -> Case:
    saved, expected = draw(saved_datasets())
    return Case("saved", {"saved": saved}, ["saved"], expected_rows=expected)


# --- folders ---------------------------------------------------------------------------------


@st.composite
def folder_cases(draw: st.DrawFn) -> Case:
    """A folder of several inputs: data files, saved datasets, sub-folders, files to skip."""
    files: dict[str, bytes | Saved | None] = {}
    total: int | None = 0
    has_data = False
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from([*FILE_KINDS, "saved", "skipped", "empty_dir"]))
        where = draw(st.sampled_from(["", "sub/", "sub/deeper/", ".hidden/"]))
        if kind == "skipped":  # not data: no supported suffix, or hidden
            name = draw(st.sampled_from(["notes{}.txt", ".hidden{}.jsonl", "README{}"]))
            files[where + name.format(i)] = draw(st.binary(max_size=20))
            continue
        if kind == "empty_dir":
            files[f"{where}empty{i}"] = None
            continue
        data, count = draw(saved_datasets() if kind == "saved" else FILE_KINDS[kind]())
        files[f"{where}part{i}" + ("" if kind == "saved" else f".{kind}")] = data
        if where != ".hidden/":
            has_data = True
            total = None if total is None or count is None else total + count
    train = {"data": None, **{f"data/{k}": v for k, v in files.items()}}
    if "part0.jsonl" in files and draw(st.booleans()):  # the same file as the held-out side too
        return Case(
            "folder", {**train, "eval.jsonl": files["part0.jsonl"]}, ["data"], ["eval.jsonl"]
        )
    return Case("folder", train, ["data"], expected_rows=total if has_data else None)


def _lenient(case: Case, lenient: bool) -> Case:
    return dataclasses.replace(case, lenient=lenient)


CASES: dict[str, st.SearchStrategy[Case]] = {
    fmt: st.builds(_lenient, cases, st.booleans())
    for fmt, cases in {
        "jsonl": jsonl_cases(),
        "json": json_cases(),
        "csv": delimited_cases("csv"),
        "tsv": delimited_cases("tsv"),
        "parquet": parquet_cases(),
        "folder": folder_cases(),
        "saved": saved_cases(),
    }.items()
}

# ---------------------------------------------------------------------------------------------
# Writing a case, and the check


def write_case(case: Case, folder: Path) -> None:
    """Write the case's files under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in case.files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, Saved):
            _write_saved(content, path)
        else:
            raise TypeError(f"unknown file content {type(content).__name__}")
    meta = {f.name: getattr(case, f.name) for f in dataclasses.fields(case) if f.name != "files"}
    (folder / "case.json").write_text(json.dumps(meta))


def _write_saved(saved: Saved, path: Path) -> None:
    from datasets import Dataset, DatasetDict

    datasets = {split: Dataset(arrow_table(table)) for split, table in saved.splits}
    if list(datasets) == [""]:
        datasets[""].save_to_disk(str(path))
    else:
        DatasetDict(datasets).save_to_disk(str(path))
    arrows = sorted(path.rglob("*.arrow"))
    if saved.damage == "drop_arrow" and arrows:
        arrows[0].unlink()
    elif saved.damage == "truncate_arrow" and arrows:
        arrows[0].write_bytes(arrows[0].read_bytes()[:100])
    elif saved.damage == "garbage_arrow" and arrows:
        arrows[0].write_bytes(b"\x00garbage" * 9)
    elif saved.damage == "flip_arrow" and arrows:  # the tail holds the data buffers
        data = arrows[0].read_bytes()
        at = len(data) * 3 // 4
        arrows[0].write_bytes(data[:at] + b"\xff\xfe\x9b" * 4 + data[at + 12 :])
    elif saved.damage == "bad_state":
        for state in path.rglob("state.json"):
            state.write_text("{not json")
    elif saved.damage == "bad_info":
        for info in path.rglob("dataset_info.json"):
            info.write_text('{"features": 5}')
    elif saved.damage == "drop_state":
        for state in path.rglob("state.json"):
            state.unlink()
    elif saved.damage == "bad_dict":
        (path / "dataset_dict.json").write_text('{"splits": ["nope"]}')


@dataclass
class Outcome:
    """What the data stage did with a case; `problem` is set when it broke a promise."""

    result: str  # "prepared", "gated" (a data gate refused it) or "refused" (a clear error)
    problem: str | None = None
    message: str = ""


def check_case(case: Case, folder: Path, model_dir: Path, tokenizer: Any) -> Outcome:
    """Write `case` into `folder` (empty or new) and run the data stage on it; see the module
    docstring for what is checked."""
    from tunewright.config import load_config
    from tunewright.console import err, out
    from tunewright.data.cli import print_data_report
    from tunewright.data.prepare import DataGateError, prepare_data
    from tunewright.errors import TunewrightError

    inputs = folder / "input"
    write_case(case, inputs)
    config = load_config(None, [f"model.name={model_dir}", f"runs_dir={folder / 'runs'}"])
    config.data.train = [str(inputs / p) for p in case.train]
    config.data.eval = [str(inputs / p) for p in case.eval]
    if case.lenient:
        config.data.max_invalid_fraction = 1.0
        config.data.max_truncated_fraction = 1.0
        config.data.allow_leakage = True
    try:
        # The consoles are captured so that a report full of odd text is rendered, not shown.
        with out.capture(), err.capture():
            try:
                prepare_data(config, tokenizer)
            except DataGateError as exc:
                gated, message = True, str(exc)
            else:
                gated, message = False, ""
            report = _read_json(folder, "validation.json")
            print_data_report(report)
    except TunewrightError as exc:
        problem = _names_a_file(str(exc), inputs)
        return Outcome("refused", problem, str(exc))
    except Exception:
        return Outcome("crash", "traceback:\n" + traceback.format_exc())
    problem = _accounting_problem(case, folder, report, gated)
    return Outcome("gated" if gated else "prepared", problem, message)


def _data_dir(folder: Path) -> Path:
    (found,) = (folder / "runs").glob("*/data")
    return found


def _read_json(folder: Path, name: str) -> Any:
    return json.loads((_data_dir(folder) / name).read_text(encoding="utf-8"))


def _read_lines(folder: Path, name: str) -> list[Any]:
    path = _data_dir(folder) / name
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()
    ]


# Errors about a position in a text file, which must give its line.
POSITIONAL = ("invalid JSON", "undecodable bytes", "malformed CSV")


def _names_a_file(message: str, inputs: Path) -> str | None:
    """None when `message` names an input file, with its line for a position in it."""
    named = re.escape(str(inputs)) + r"[^:\s]*"
    for match in re.finditer(f"(?P<path>{named})(?::(?P<line>[0-9]+))?", message):
        positional = any(p in message for p in POSITIONAL)
        if Path(match["path"]).exists() and (match["line"] or not positional):
            return None
    return f"error message names no input file (and line): {message!r}"


def _accounting_problem(case: Case, folder: Path, report: dict, gated: bool) -> str | None:
    rows = report["rows"]
    problems = []
    if rows["train"] + rows["eval"] + rows["rejected"] != rows["total"]:
        problems.append(f"rows do not add up: {rows}")
    if sum(f["rows"] for f in report["files"]) != rows["total"]:
        problems.append(
            f"file rows {[f['rows'] for f in report['files']]} != total {rows['total']}"
        )
    if case.expected_rows is not None and rows["total"] != case.expected_rows:
        problems.append(f"read {rows['total']} rows, the input holds {case.expected_rows}")
    rejected = _read_lines(folder, "rejected.jsonl")
    if len(rejected) != rows["rejected"]:
        problems.append(f"rejected.jsonl has {len(rejected)} rows, the report {rows['rejected']}")
    files = {f["file"] for f in report["files"]}
    for entry in rejected:
        source, _, line = str(entry.get("source")).rpartition(":")
        source = re.sub(r"\[\w+\]$", "", source)  # a saved dataset's split: `folder[train]`
        if source not in files or not re.fullmatch(r"[1-9][0-9]*", line):
            problems.append(f"rejected row without its file:line: {entry.get('source')!r}")
        if not entry.get("reason"):
            problems.append(f"rejected row without a reason: {entry.get('source')!r}")
    if not gated:
        for split in ("train", "eval"):
            written = _read_lines(folder, f"{split}.jsonl")
            if len(written) != rows[split]:
                problems.append(f"{split}.jsonl has {len(written)} rows, the report {rows[split]}")
    return "; ".join(problems[:5]) or None


def save_case(case: Case, outcome: Outcome, folder: Path) -> None:
    """Keep a failing case's files and what went wrong, for `bench/fuzz_data.py --replay`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_case(case, folder / "input")
    (folder / "problem.txt").write_text(
        f"{outcome.result}: {outcome.problem}\n", encoding="utf-8", errors="backslashreplace"
    )
    with contextlib.suppress(Exception):
        (folder / "case.txt").write_text(
            repr(case)[:200_000], encoding="utf-8", errors="backslashreplace"
        )


def replay(saved: Path, folder: Path, model_dir: Path, tokenizer: Any) -> Outcome:
    """Run the check again on a case saved by `save_case`."""
    meta = json.loads((saved / "input" / "case.json").read_text())
    shutil.copytree(saved / "input", folder / "input")
    case = Case(files={}, **meta)
    return check_case(case, folder, model_dir, tokenizer)
