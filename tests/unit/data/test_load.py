import codecs
import json

import pytest

from tunewright.data.load import LoadStats, expand_inputs, iter_rows
from tunewright.errors import InputFileError

ROW = {"instruction": "Say hello", "output": "Hello there, friend of mine."}


def lines(*rows) -> bytes:
    return b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows)


def test_jsonl_rows_carry_true_line_numbers_and_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        lines(ROW, b"\n", b"{not json}\n", b"[1, 2]\n", b'{"output": "caf\xe9"}\n', ROW)
    )
    stats = LoadStats()
    rows = list(iter_rows(path, stats))
    assert [(r.line, r.error is None) for r in rows] == [
        (1, True),
        (3, False),
        (4, False),
        (5, False),
        (6, True),
    ]
    assert rows[1].error.startswith("invalid JSON: Expecting property name")
    assert rows[1].raw == "{not json}"
    assert rows[2].error == "expected a JSON object, got list"
    assert rows[3].error == "undecodable bytes (not UTF-8) at byte 16 of the line"
    assert stats.rows[str(path)] == 5 and stats.blank_lines[str(path)] == 1


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode("utf-8"),
        lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
        lambda t: t.encode("utf-16"),
        lambda t: t.encode("utf-16-le"),
    ],
    ids=["utf8", "utf8-bom", "utf16-bom", "utf16-le"],
)
def test_encodings(tmp_path, encode):
    text = json.dumps({"instruction": "Grüße", "output": "naïve café ☕ works fine"}) + "\n"
    path = tmp_path / "d.jsonl"
    path.write_bytes(encode(text * 2))
    rows = list(iter_rows(path))
    assert [r.data["output"] for r in rows] == ["naïve café ☕ works fine"] * 2


def test_json_array_rows_know_their_lines(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"a": 1},\n\n  {"a": 2,\n   "b": 3},\n  "oops"\n]\n')
    rows = list(iter_rows(path))
    assert [(r.line, r.data) for r in rows[:2]] == [(2, {"a": 1}), (4, {"a": 2, "b": 3})]
    assert rows[2].line == 6 and rows[2].error == "expected a JSON object, got str"


def test_json_syntax_error_names_line_and_column(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"a": 1},\n {"a": }\n]')
    with pytest.raises(InputFileError, match=r"d\.json:3:8: invalid JSON"):
        list(iter_rows(path))


def test_json_object_of_records(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"x1": ROW, "x2": ROW}))
    assert [r.line for r in iter_rows(path)] == [1, 2]


def test_csv_multiline_fields_and_bad_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'text,label\n"two\nlines",pos\nonly-one-field\nbad \xff byte,neg\nok,neg\n')
    rows = list(iter_rows(path))
    assert rows[0].line == 2 and rows[0].data == {"text": "two\nlines", "label": "pos"}
    assert rows[1].line == 4 and rows[1].error == "row has 1 fields, header has 2"
    assert rows[2].line == 5 and rows[2].error.startswith("undecodable bytes")
    assert rows[3].line == 6 and rows[3].data == {"text": "ok", "label": "neg"}


def test_folder_and_saved_dataset(tmp_path):
    from datasets import Dataset

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(lines(ROW))
    (folder / "notes.txt").write_text("ignored: not a data file")
    Dataset.from_list([ROW, ROW]).save_to_disk(str(folder / "saved"))
    files = expand_inputs([folder])
    assert [f.name for f in files] == ["a.jsonl", "saved"]
    assert [r.data for r in iter_rows(files[1])] == [ROW, ROW]


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputFileError, match="data file not found"):
        expand_inputs([tmp_path / "nope.jsonl"])
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(InputFileError, match=r"unknown file type '\.xml'"):
        list(iter_rows(tmp_path / "x.xml"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="folder holds no data files"):
        expand_inputs([tmp_path / "empty"])


def test_csv_bare_carriage_return_rejects_only_that_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nfine,pos\nbro\rken,neg\nalso fine,neg\n")
    rows = list(iter_rows(path))
    assert [(r.line, r.error is None) for r in rows] == [(2, True), (3, False), (4, True)]
    assert rows[1].error.startswith("malformed CSV row")


def test_hub_dataset_without_network_is_a_clear_error(monkeypatch):
    from tunewright.data.load import load_hub_dataset

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputFileError, match="could not load dataset 'someone/data'") as info:
        list(load_hub_dataset("someone/data"))
    assert "save the dataset to a file" in info.value.hint
