"""`tunewright data import-logs`: a request log in the shape serving writes, plus judgements,
becomes SFT rows and preference pairs that pass `tunewright data validate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunewright.config import load_config
from tunewright.data.feedback import append_feedback, import_logs, read_feedback
from tunewright.files import read_jsonl
from tunewright.request_log import RequestRecord

SYSTEM = {"role": "system", "content": "You answer geography questions in one sentence."}


def ask(question: str) -> list[dict[str, Any]]:
    return [SYSTEM, {"role": "user", "content": question}]


def log_line(
    request_id: str,
    prompt: Any,
    output: Any,
    *,
    status: int = 200,
    content: bool = True,
    endpoint: str = "/v1/chat/completions",
) -> dict[str, Any]:
    """A log line exactly as `tunewright serve` writes it (serving/observe.py: RequestLog)."""
    record = RequestRecord(
        request_id=request_id,
        endpoint=endpoint,
        started=1_767_225_600.0 + len(request_id),
        model="tuned",
        served=True,
        status=status,
        prompt=prompt,
        output=output,
    )
    return record.log_line(0.25, content)


def write_log(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


FRANCE = "Paris is the capital of France and its largest city."
SPAIN_SERVED = "Barcelona is the capital of Spain, on the Mediterranean coast."
SPAIN_FIXED = "Madrid is the capital of Spain, in the middle of the country."


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A log with one line of every kind, and the feedback file the UI would append."""
    log = write_log(
        tmp_path / "requests.jsonl",
        [
            log_line("r-good", ask("What is the capital city of France?"), FRANCE),  # 1
            log_line("r-fixed", ask("What is the capital city of Spain?"), SPAIN_SERVED),  # 2
            log_line("r-bad", ask("What is the capital city of Peru?"), "Quito, I believe."),
            log_line(  # 4: the completions endpoint: a text prompt
                "r-text",
                "The longest river in Africa is",
                " the Nile, which flows north into the Mediterranean Sea.",
                endpoint="/v1/completions",
            ),
            log_line("r-two", ask("Name a river in Asia."), ["The Mekong.", "The Ganges."]),
            log_line("r-failed", ask("What is the capital city of Chad?"), None, status=500),
            log_line("r-counts", None, None, content=False),  # 7: log_content was off
            '{"time": "2026-01-01T00:00:00+00:00", "request_id": "r-torn", "endp',  # 8
            log_line("r-again", ask("What is the capital city of France?"), FRANCE),  # 9
            log_line("r-unjudged", ask("What is the capital city of Chile?"), "Santiago."),
        ],
    )
    feedback = tmp_path / "requests.feedback.jsonl"
    append_feedback(feedback, "r-good", "good")
    append_feedback(feedback, "r-fixed", "good")  # overridden by the next line
    append_feedback(feedback, "r-fixed", "bad", SPAIN_FIXED)
    append_feedback(feedback, "r-bad", "bad", "   ")  # a blank correction is none
    append_feedback(feedback, "r-text", "good")
    append_feedback(feedback, "r-two", "good")
    append_feedback(feedback, "r-failed", "good")
    append_feedback(feedback, "r-again", "good")  # the same exchange again: a duplicate
    append_feedback(feedback, "r-elsewhere", "good")  # a request of another log
    return log


def test_import_logs_round_trip(
    served: Path, tiny_model_dir: Path, run_cli: Any, tmp_path: Path
) -> None:
    tiny = f"model.name={tiny_model_dir}"
    code, out, err = run_cli("data", "import-logs", str(served), tiny)
    assert code == 0, err
    out_dir = tmp_path / "requests-import"
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "import_report.json",
        "preference.jsonl",
        "rejected.jsonl",
        "sft.jsonl",
    ]
    assert read_jsonl(out_dir / "sft.jsonl") == [
        {"messages": [*ask("What is the capital city of France?"), answer(FRANCE)]},
        {
            "messages": [
                {"role": "user", "content": "The longest river in Africa is"},
                answer(" the Nile, which flows north into the Mediterranean Sea."),
            ]
        },
    ]
    # The correction is chosen, the answer served is rejected.
    assert read_jsonl(out_dir / "preference.jsonl") == [
        {
            "prompt": ask("What is the capital city of Spain?"),
            "chosen": [answer(SPAIN_FIXED)],
            "rejected": [answer(SPAIN_SERVED)],
        }
    ]
    [duplicate] = read_jsonl(out_dir / "rejected.jsonl")
    assert duplicate["source"] == f"{served}:9 (r-again)"
    assert duplicate["check"] == "exact_duplicate"
    assert f"first seen at {served}:1 (r-good)" in duplicate["reason"]

    report = json.loads((out_dir / "import_report.json").read_text(encoding="utf-8"))
    assert report["outcomes"] == {
        "good": 3,
        "corrected": 1,
        "bad_no_correction": 1,
        "not_judged": 1,
        "no_content": 1,
        "failed": 1,
        "no_answer": 0,
        "several_answers": 1,
        "unreadable": 1,
    }
    assert report["examples"]["unreadable"] == [f"{served}:8"]
    assert (report["sft_rows"], report["preference_pairs"], report["rejected"]) == (2, 1, 1)
    assert report["judgements"] == {
        "lines": 9,
        "overridden": 1,
        "unknown_request": 1,
        "unknown_examples": ["r-elsewhere"],
    }
    assert report["checks"]["preference.jsonl"]["task"] == "preference"
    printed = " ".join(out.split())  # rich wraps long lines at 120 columns
    assert "1 bad, no correction: not usable; 1 not judged" in printed
    assert "2 SFT rows, 1 preference pairs, 1 rejected by the checks" in printed

    # What was written is data `tunewright data validate` accepts as it is.
    for name, task, rows in (("sft.jsonl", "chat", 2), ("preference.jsonl", "preference", 1)):
        code, out, err = run_cli("data", "validate", str(out_dir / name), tiny, "--json")
        assert code == 0, err
        checked = json.loads(out)
        assert checked["task"] == task
        assert checked["rows"]["total"] == rows and checked["rows"]["rejected"] == 0


def answer(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_import_logs_api_takes_explicit_paths(
    served: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    judged = tmp_path / "elsewhere" / "judged.jsonl"
    append_feedback(judged, "r-unjudged", "good")
    out_dir = tmp_path / "out"
    config = load_config(None, [f"model.name={tiny_model_dir}"])
    report = import_logs(served, judged, out_dir, config)
    assert (report["sft_rows"], report["preference_pairs"]) == (1, 0)
    assert report["out_dir"] == str(out_dir)
    assert report["outcomes"]["not_judged"] == 5  # every other exchange: this file judged one
    assert read_jsonl(out_dir / "preference.jsonl") == []
    assert read_jsonl(out_dir / "sft.jsonl")[0]["messages"][-1] == answer("Santiago.")


def test_feedback_last_line_wins(tmp_path: Path) -> None:
    path = tmp_path / "feedback" / "requests.feedback.jsonl"
    assert read_feedback(path) == {}  # nothing judged yet
    append_feedback(path, "a", "bad", "Better answer.")
    append_feedback(path, "b", "good")
    append_feedback(path, "a", "good", "")
    judged = read_feedback(path)
    assert sorted(judged) == ["a", "b"]
    assert (judged["a"].rating, judged["a"].correction, judged["a"].line) == ("good", None, 3)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    with pytest.raises(ValueError, match="rating"):
        append_feedback(path, "a", "meh")


def test_missing_log_is_named(run_cli: Any, tmp_path: Path) -> None:
    code, _, err = run_cli("data", "import-logs", str(tmp_path / "nope.jsonl"))
    assert code == 1
    assert f"request log not found: {tmp_path / 'nope.jsonl'}" in err


def test_log_without_content_says_how_to_get_it(run_cli: Any, tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "requests.jsonl",
        [log_line(f"r{i}", ask("Where is Lima?"), "In Peru.", content=False) for i in range(3)],
    )
    code, _, err = run_cli("data", "import-logs", str(log))
    assert code == 1
    assert "none of its 3 requests was logged with its content" in err
    assert "serve.log_content: true" in err
    assert not (tmp_path / "requests-import").exists()


def test_malformed_feedback_lines_are_named(served: Path, run_cli: Any, tmp_path: Path) -> None:
    feedback = tmp_path / "bad.feedback.jsonl"
    good = {"request_id": "r-good", "rating": "good", "correction": None, "time": "2026-01-01"}
    feedback.write_text(
        "\n".join(
            [
                json.dumps(good),
                json.dumps({**good, "rating": "great"}),
                "",
                '{"request_id": "r-bad", "rating": "bad"',
                json.dumps({**good, "time": "yesterday"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    code, _, err = run_cli("data", "import-logs", str(served), "--feedback", str(feedback))
    assert code == 1
    assert "3 malformed feedback lines" in err
    assert f"{feedback}:2: rating: must be 'good' or 'bad', not 'great'" in err
    assert f"{feedback}:4: not JSON" in err
    assert f"{feedback}:5: time: 'yesterday' is not an ISO 8601 time" in err
    assert not (tmp_path / "requests-import").exists()
