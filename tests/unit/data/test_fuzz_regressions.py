"""Inputs that once crashed the data stage (found by tests/support/fuzz_data.py): each now gives a
rejected row with its line, or an error naming the file, and never a traceback."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tunewright.data.checks import check_records
from tunewright.data.load import iter_rows
from tunewright.data.normalize import RowError, normalize_row
from tunewright.data.records import make_record
from tunewright.errors import InputFileError

GOOD = '{"instruction": "Say hello", "output": "Hello there, friend of mine."}'
DEEP = "[" * 100_000 + "]" * 100_000  # far past Python's recursion limit
LONG_NUMBER = "9" * 5000  # past Python's 4,300-digit limit for int()


def rows_of(path: Path, text: str | bytes) -> list:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return list(iter_rows(path))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"instruction": ' + DEEP + ', "output": "x"}', "JSON nested too deeply"),
        ('{"instruction": "x", "output": ' + LONG_NUMBER + "}", "more than 4300 digits"),
        ('{"instruction": "\\ud800", "output": "half a character"}', "lone surrogate \\ud800"),
    ],
    ids=["deep", "long-number", "lone-surrogate"],
)
def test_jsonl_line_python_cannot_hold_is_a_rejected_row(tmp_path, line, reason):
    # Were: RecursionError / ValueError from json.loads; the surrogate passed the loader, then
    # crashed the tokenizer (TypeError from encode_batch) or writing rejected.jsonl as UTF-8.
    rows = rows_of(tmp_path / "d.jsonl", f"{GOOD}\n{line}\n{GOOD}\n")
    assert [(r.line, r.error is None) for r in rows] == [(1, True), (2, False), (3, True)]
    assert rows[1].error.startswith("unreadable JSON: ") and reason in rows[1].error
    assert rows[1].raw  # the line as written, for rejected.jsonl


def test_escaped_surrogate_pair_is_one_character(tmp_path):
    rows = rows_of(tmp_path / "d.jsonl", '{"text": "smile \\ud83d\\ude00"}\n')
    assert rows[0].data == {"text": "smile 😀"}


@pytest.mark.parametrize(
    ("element", "reason"),
    [(DEEP, "JSON nested too deeply"), (LONG_NUMBER, "a number has more than 4300 digits")],
    ids=["deep", "long-number"],
)
def test_json_array_element_python_cannot_hold_names_file_and_line(tmp_path, element, reason):
    path = tmp_path / "d.json"
    with pytest.raises(InputFileError, match=rf"d\.json:3: unreadable JSON: {reason}"):
        rows_of(path, f"[\n {GOOD},\n {element}\n]")
    with pytest.raises(InputFileError, match=rf"d\.json: unreadable JSON: {reason}"):
        rows_of(path, f'{{"a": {GOOD}, "b": {element}}}')  # an object of records


def test_json_array_element_with_lone_surrogate_is_a_rejected_row(tmp_path):
    rows = rows_of(tmp_path / "d.json", f'[\n {GOOD},\n {{"text": "\\udfff"}}\n]')
    assert rows[0].error is None
    assert rows[1].line == 3 and "lone surrogate \\udfff" in rows[1].error


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (DEEP, "nested too deeply"),
        ("[" + LONG_NUMBER + "]", "4300 digits"),
        ('["\\ud800"]', "lone surrogate"),
    ],
    ids=["deep", "long-number", "lone-surrogate"],
)
def test_json_text_in_a_field_python_cannot_hold_is_a_row_error(value, reason):
    # CSV cells carry nested fields as JSON text; these crashed normalize_row.
    with pytest.raises(RowError, match=rf"field 'messages' is unreadable JSON: .*{reason}"):
        normalize_row({"messages": value}, "openai", "d.csv", 2)
    with pytest.raises(RowError, match=rf"field 'tools' is unreadable JSON: .*{reason}"):
        normalize_row({"messages": [], "tools": value}, "openai", "d.csv", 2)
    call = {"from": "function_call", "value": '{"name": "f", "arguments": ' + value + "}"}
    with pytest.raises(RowError, match=rf"function call is unreadable: .*{reason}"):
        normalize_row({"conversations": [call]}, "sharegpt", "d.csv", 2)


def test_tool_call_arguments_nested_too_deeply_are_an_invalid_tool_call():
    # Was: RecursionError from json.loads in the tool-call check.
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": DEEP}}
    messages = [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "found", "tool_call_id": "c1"},
        {"role": "assistant", "content": "Here is what the lookup found."},
    ]
    findings = check_records([make_record(messages, "chat", "d.jsonl", 7)])
    assert [(f.check, f.location) for f in findings] == [("invalid_tool_call", "d.jsonl:7")]
    assert "arguments: JSON nested too deeply" in findings[0].detail


def _plain_parquet(path: Path) -> bytes:
    """Three rows, uncompressed and PLAIN-encoded, so that row 2's text lies in the file as is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"text": ["alpha one", "bbbbbbbb", "gamma three"], "label": list("xyz")})
    pq.write_table(table, path, compression="none", use_dictionary=False)
    return path.read_bytes()


def test_parquet_damaged_page_names_the_file(tmp_path):
    # Was: OSError/ArrowInvalid from iter_batches (a damaged page is only seen when read).
    path = tmp_path / "d.parquet"
    data = _plain_parquet(path).replace(b"\x08\x00\x00\x00bbbbbbbb", b"\xff\xff\xff\x7fbbbbbbbb")
    with pytest.raises(InputFileError, match=r"d\.parquet: not a readable Parquet file after row"):
        rows_of(path, data)


def test_parquet_text_that_is_not_utf8_rejects_only_its_row(tmp_path):
    # Was: UnicodeDecodeError from to_pylist, for the whole batch.
    path = tmp_path / "d.parquet"
    rows = rows_of(path, _plain_parquet(path).replace(b"bbbbbbbb", b"\xff\xfe" * 4))
    assert [(r.line, r.data) for r in rows] == [
        (1, {"text": "alpha one", "label": "x"}),
        (2, None),
        (3, {"text": "gamma three", "label": "z"}),
    ]
    assert rows[1].error.startswith("unreadable row: 'utf-8' codec can't decode")


def test_table_values_json_has_no_type_for_become_text(tmp_path):
    # Was: TypeError (bytes, datetime, Decimal ... are not JSON serializable) when a rejected row
    # was written to rejected.jsonl.
    import datetime
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    values = {
        "blob": b"\x00\xffraw",
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "day": datetime.date(2024, 5, 6),
        "price": decimal.Decimal("12.50"),
        "took": datetime.timedelta(seconds=90),
    }
    pq.write_table(pa.table({k: [v] for k, v in values.items()}), tmp_path / "d.parquet")
    (row,) = iter_rows(tmp_path / "d.parquet")
    assert row.data == {k: str(v) for k, v in values.items()}
    json.dumps(row.data)


def _saved(path: Path) -> Path:
    from datasets import Dataset

    Dataset.from_dict({"text": ["alpha one", "bbbbbbbb", "gamma three"]}).save_to_disk(str(path))
    return path


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: (p / "state.json").write_text("{not json"),
        lambda p: next(p.glob("*.arrow")).unlink(),
        lambda p: next(p.glob("*.arrow")).write_bytes(b"\x00garbage" * 9),
        # Text bytes that are not UTF-8: datasets reads memory-mapped Arrow unchecked.
        lambda p: next(p.glob("*.arrow")).write_bytes(
            next(p.glob("*.arrow")).read_bytes().replace(b"bbbbbbbb", b"\xff" * 8)
        ),
    ],
    ids=["bad-state", "no-arrow", "garbage-arrow", "not-utf8"],
)
def test_damaged_saved_dataset_names_the_folder(tmp_path, damage):
    # Were: JSONDecodeError, FileNotFoundError, ArrowInvalid; UnicodeDecodeError or SystemError
    # while iterating.
    path = _saved(tmp_path / "saved")
    damage(path)
    with pytest.raises(InputFileError, match=r"saved: not a readable save_to_disk dataset \("):
        list(iter_rows(path))


def test_csv_field_longer_than_csvs_default_limit_is_one_row(tmp_path):
    # Was: "field larger than field limit (131072)", and the rest of the quoted field read as
    # rows of its own: one record counted (and rejected) twice.
    document = ("word " * 20_000 + "\n") * 2  # 200,002 characters over three lines
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["document", "summary"], [document, "short"], ["b", "c"]])
    rows = rows_of(tmp_path / "d.csv", buffer.getvalue())
    assert [(r.line, r.error) for r in rows] == [(2, None), (5, None)]
    assert rows[0].data == {"document": document, "summary": "short"}


def test_validate_prints_labels_that_look_like_markup(tmp_path, run_cli, tiny_model_dir):
    # Was: rich.errors.MarkupError ("closing tag '[/]' ... has nothing to close") from the
    # labels line of `data validate`, the only data printed unescaped.
    rows = [{"text": f"example number {i} with some words", "label": "[/]"} for i in range(10)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run_cli("data", "validate", str(path), f"model.name={tiny_model_dir}")
    assert code == 0, err
    assert "labels: {'[/]': 10}" in out
