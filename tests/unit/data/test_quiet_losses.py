"""Issue 15, item 5: every row the data stage does not read is counted and reported, or the input
is refused with a message that says what to list instead; the rows-add-up promise is a real check.
"""

import json

import pytest

from tunewright.config import load_config
from tunewright.data.accounting import RowsLostError, check_rows_add_up
from tunewright.data.load import LoadStats, hub_source, iter_rows
from tunewright.data.prepare import load_side
from tunewright.errors import InputFileError, TunewrightError
from tunewright.evaluation.selection import left_out_note, select_examples

ROW = {"instruction": "Say hello", "output": "Hello there, friend of mine."}


def test_blank_csv_lines_are_counted_and_reported(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "instruction,output\n\nSay hi,Hello there friend\n\n\nSay bye,Goodbye my friend\n\n"
    )
    stats = LoadStats()
    rows = list(iter_rows(path, stats))
    assert [(r.line, r.data["output"]) for r in rows] == [
        (3, "Hello there friend"),
        (6, "Goodbye my friend"),
    ]
    assert stats.blank_lines[str(path)] == 4
    loaded = load_side(load_config(None, [f"runs_dir={tmp_path}"]), [str(path)], "train")
    (entry,) = loaded.files
    assert (entry["rows"], entry["blank_lines"], len(loaded.records)) == (2, 4, 2)


def test_json_object_of_several_lists_is_refused_naming_them(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": [ROW, ROW], "test": [ROW]}))
    with pytest.raises(InputFileError, match=r"splits\.json: a JSON object holding 2 lists") as e:
        list(iter_rows(path))
    assert "(train, test)" in str(e.value) and "data.eval" in e.value.hint
    # Still read: one wrapped list, and {id: record} (a list there is that record's error).
    path.write_text(json.dumps({"data": [ROW, ROW, ROW]}))
    assert [r.data for r in iter_rows(path)] == [ROW, ROW, ROW]
    path.write_text(json.dumps({"a": ROW, "b": [1], "c": [2]}))
    rows = list(iter_rows(path))
    got_list = "expected a JSON object, got list"
    assert [r.error for r in rows] == [None, got_list, got_list]


def test_saved_dataset_dict_of_several_splits_is_refused_and_its_split_readable(tmp_path):
    from datasets import Dataset, DatasetDict

    saved = tmp_path / "saved"
    DatasetDict(
        {"test": Dataset.from_list([ROW]), "train": Dataset.from_list([ROW, ROW])}
    ).save_to_disk(str(saved))
    with pytest.raises(
        InputFileError, match=r"saved: a save_to_disk DatasetDict with 2 splits"
    ) as e:
        list(iter_rows(saved))
    # The hint's folders are real saved datasets: listing one reads just that split.
    assert f"data.train: [{saved / 'train'}]" in e.value.hint
    assert f"data.eval: [{saved / 'test'}]" in e.value.hint
    assert [r.data for r in iter_rows(saved / "train")] == [ROW, ROW]
    # One split is unambiguous: read, and named in each row's location.
    single = tmp_path / "single"
    DatasetDict({"train": Dataset.from_list([ROW])}).save_to_disk(str(single))
    assert [r.location for r in iter_rows(single)] == [f"{single}[train]:1"]


def test_hub_rows_name_the_one_split_read():
    assert hub_source("org/data") == "hub:org/data[train]"


def test_rows_add_up_is_a_real_check_raising_an_internal_error():
    check_rows_add_up(read=10, train=6, eval=2, rejected=2)
    with pytest.raises(RowsLostError, match=r"1 rows lost: read 10 input rows, but train 6"):
        check_rows_add_up(read=10, train=6, eval=2, rejected=1)
    with pytest.raises(RowsLostError, match="2 rows counted twice"):
        check_rows_add_up(read=10, train=8, eval=2, rejected=2)
    # A bug, not a user error: it must crash with a traceback, not print as a hint.
    assert not issubclass(RowsLostError, TunewrightError)


def _example(answer: str | None) -> dict:
    messages = [{"role": "user", "content": "Q"}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {"task": "chat", "messages": messages}


def test_eval_selection_counts_what_it_leaves_out():
    records = [_example("A1"), _example(None), _example("A2"), _example("A3"), _example(None)]
    chosen, selection = select_examples(records, 2)
    assert [r["messages"][1]["content"] for r in chosen] == ["A1", "A2"]
    assert selection == {
        "available": 5,
        "without_reference": 2,
        "over_max_examples": 1,
        "evaluated": 2,
    }
    assert left_out_note(selection) == (
        "evaluating 2 of 5 examples; left out: 2 without an assistant answer to compare, "
        "1 past eval.max_examples"
    )
    chosen, selection = select_examples(records[:1], None)
    assert len(chosen) == 1 and left_out_note(selection) is None
    with pytest.raises(TunewrightError, match="none of the 2 has an assistant answer"):
        select_examples([_example(None), _example(None)], None)
