"""The data stage end to end on a file with planted problems, through the CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from tests.support.projects import make_project, write_jsonl
from tests.unit.data.texts import text

from tunewright.config import load_config
from tunewright.data.prepare import DataGateError, prepare_data

WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()


def long_text(seed: int, n: int = 120) -> str:
    return " ".join(WORDS[(seed * 7 + i * (seed + 3)) % len(WORDS)] + str(i % 13) for i in range(n))


def chat(user: str, answer: str, **extra) -> dict:
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer, **extra},
        ]
    }


def good(i: int) -> dict:
    return chat(
        f"Question number {i}: what is {i} plus {i}?",
        f"The answer to question {i} is {2 * i}, computed carefully.",
    )


def planted_rows() -> tuple[bytes, list[dict]]:
    """train.jsonl (raw: one line is not UTF-8) and eval.jsonl rows, problems at known lines."""
    near_a = chat("Summarise this please.", long_text(1))
    words = long_text(1).split()
    words[60] = "changed"
    near_b = chat("Summarise this please.", " ".join(words))
    bad_order = {
        "messages": [
            {"role": "assistant", "content": "I speak first, which is wrong."},
            {"role": "user", "content": "Hello?"},
        ]
    }
    bad_tool = {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "3 degrees"},
            {"role": "assistant", "content": "It is three degrees in Oslo today."},
        ]
    }
    lines = [
        json.dumps(good(1)),  # 1
        json.dumps(near_a),  # 2
        '{"messages": [bad json',  # 3 unreadable
        json.dumps(chat("Say nothing", "   ")),  # 4 empty output
        json.dumps(good(1)),  # 5 exact duplicate of 1
        json.dumps(near_b),  # 6 near-duplicate of 2
        json.dumps(bad_order),  # 7 bad role order
        json.dumps(bad_tool),  # 8 invalid tool-call JSON
    ]
    raw = "\n".join(lines).encode() + b'\n{"messages": "caf\xe9"}\n'  # 9 undecodable
    raw += "".join(json.dumps(good(i)) + "\n" for i in range(10, 40)).encode()  # 10..39
    leaked = good(25)  # train line 25
    return raw, [good(100), leaked, *(good(i) for i in range(101, 106))]


def project(
    folder: Path, model: Path, rows: list[dict] | bytes, name: str | None = None, **data: object
) -> Path:
    """A project for the data stage alone: `data` settings over the base, no train section."""
    return make_project(folder, model=model, rows=rows, name=name, data=data, train=None)


@pytest.fixture
def planted(tmp_path, tiny_model_dir):
    raw, eval_rows = planted_rows()
    evalf = write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    config = project(
        tmp_path, tiny_model_dir, raw, name="planted", eval="eval.jsonl", max_seq_len=4096
    )
    return config, tmp_path / "train.jsonl", evalf


def test_report_names_each_planted_problem_at_its_line(planted, run_cli):
    config, train, evalf = planted
    code, out, err = run_cli("data", "validate", str(config), "--json")
    assert code == 1
    report = json.loads(out)
    checks = report["checks"]
    t = str(train)
    assert checks["unreadable"]["examples"] == [f"{t}:3", f"{t}:9"]
    assert checks["empty_output"]["examples"] == [f"{t}:4"]
    assert checks["exact_duplicate"]["examples"] == [f"{t}:5"]
    assert checks["near_duplicate"]["examples"] == [f"{t}:6"]
    assert checks["bad_conversation"]["examples"] == [f"{t}:7"]
    assert checks["invalid_tool_call"]["examples"] == [f"{t}:8"]
    assert report["leaks"]["examples"] == [f"{evalf}:2"]
    assert f"{t}:25" in report["leaks"]["reasons"][0]
    rows = report["rows"]
    assert rows["total"] == 39 + 7
    assert rows["train"] + rows["eval"] + rows["rejected"] == rows["total"]
    assert "data checks failed" in err


def test_prepare_fails_under_default_gates_and_passes_relaxed(planted, run_cli):
    config, train, _ = planted
    code, _, err = run_cli("data", "prepare", str(config))
    assert code == 1
    assert "data.max_invalid_fraction" in err and "leak from train" in err
    data_dir = config.parent / "runs" / "planted" / "data"
    assert not (data_dir / "manifest.json").exists()
    assert not (data_dir / "train.jsonl").exists()
    assert (data_dir / "rejected.jsonl").is_file()

    code, _, err = run_cli(
        "data", "prepare", str(config), "data.max_invalid_fraction=0.5", "data.allow_leakage=true"
    )
    assert code == 0, err
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert set(manifest["outputs"]) == {
        "train.jsonl",
        "eval.jsonl",
        "rejected.jsonl",
        "findings.jsonl",
        "validation.json",
    }
    # Every warning and leak, one row each, as validation.json counts them.
    report = json.loads((data_dir / "validation.json").read_text())
    findings = [json.loads(x) for x in (data_dir / "findings.jsonl").read_text().splitlines()]
    for check in ("near_duplicate",):
        rows = [f for f in findings if f["check"] == check]
        assert len(rows) == report["checks"][check]["count"] >= 1
        assert [f["source"] for f in rows][:10] == report["checks"][check]["examples"]
    assert len([f for f in findings if f["check"] == "leak"]) == report["leaks"]["count"] >= 1
    rejected = [json.loads(x) for x in (data_dir / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in rejected) == sorted(
        f"{train}:{n}" for n in (3, 4, 5, 7, 8, 9)
    )
    assert all(r["reason"] for r in rejected)
    train_rows = (data_dir / "train.jsonl").read_text().splitlines()
    eval_rows = (data_dir / "eval.jsonl").read_text().splitlines()
    assert len(train_rows) + len(eval_rows) + len(rejected) == 39 + 7


def test_split_from_train_is_deterministic(tmp_path, tiny_model_dir):
    path = project(tmp_path, tiny_model_dir, [good(i) for i in range(50)])
    first = prepare_data(load_config(path))
    second = prepare_data(load_config(path))
    assert [r["source"] for r in first.eval] == [r["source"] for r in second.eval]
    assert len(first.eval) == 5 and len(first.train) == 45
    reseeded = prepare_data(load_config(path, ["seed=7"]))
    assert [r["source"] for r in reseeded.eval] != [r["source"] for r in first.eval]


def test_truncation_gate(tmp_path, tiny_model_dir):
    path = project(tmp_path, tiny_model_dir, [good(i) for i in range(20)], max_seq_len=8)
    with pytest.raises(DataGateError, match=r"data\.max_truncated_fraction"):
        prepare_data(load_config(path))
    report = json.loads((tmp_path / "runs" / "default" / "data" / "validation.json").read_text())
    assert report["tokens"]["truncated"] == 20
    assert report["tokens"]["tokens_cut_max"] > 0


def test_export_and_render_after_prepare(tmp_path, tiny_model_dir, run_cli):
    path = project(tmp_path, tiny_model_dir, [good(i) for i in range(20)])
    code, _, err = run_cli("data", "export", str(path), "--to", "alpaca")
    assert code == 1 and "data prepare" in err
    assert run_cli("data", "prepare", str(path))[0] == 0
    for fmt, name in (
        ("openai", "train.jsonl"),
        ("alpaca", "train.json"),
        ("sharegpt", "train.json"),
    ):
        code, out, err = run_cli(
            "data", "export", str(path), "--to", fmt, "--out", str(tmp_path / fmt)
        )
        assert code == 0, err
        assert (tmp_path / fmt / name).is_file()
    alpaca = json.loads((tmp_path / "alpaca" / "train.json").read_text())
    assert len(alpaca) == 18 and {"instruction", "input", "output"} <= set(alpaca[0])
    code, out, err = run_cli("data", "render", str(path), "--index", "0")
    assert code == 0, err
    assert "with loss" in out


def test_inspect_a_bare_data_file(tmp_path, run_cli, tiny_model_dir):
    train = tmp_path / "train.csv"
    train.write_text("text,label\ngreat film,positive\nawful film,negative\n")
    code, out, err = run_cli("data", "inspect", str(train), f"model.name={tiny_model_dir}")
    assert code == 0, err
    assert "2 rows, format classification" in out


BOILERPLATE = "Of course, I can help you with that; here is what you asked for, step by step"


def test_the_automatic_split_makes_no_leaks_from_boilerplate_or_shared_runs(
    tmp_path, tiny_model_dir
):
    rows = [good(i) for i in range(120)]
    for i in range(0, 120, 4):  # 30 answers open with the same formula
        rows[i] = chat(f"Task {i}, please.", f"{BOILERPLATE}: {text(20, i)}")
    shared = text(15, 500)  # a rarer run: rows 1, 2 and 3 quote the same 15 words
    for i in (1, 2, 3):
        rows[i] = chat(f"Quote {i}", f"Quoting {i}: {shared}")
    path = project(tmp_path, tiny_model_dir, rows, eval_fraction=0.2)
    prepared = prepare_data(load_config(path))  # data.allow_leakage is false by default
    report = prepared.report
    assert report["leaks"]["count"] == 0
    [phrase] = report["boilerplate"]["phrases"]
    assert phrase["text"].startswith("of course i can help you with that here is what")
    assert phrase["rows"] == 30
    assert phrase["examples"] == [f"{tmp_path / 'train.jsonl'}:{n}" for n in (1, 5, 9)]
    groups = report["boilerplate"]["split_groups"]
    assert groups == {
        "cap": 20,
        "grouped_rows": 3,
        "largest": 3,
        "links_over_cap": 0,
        "leaks_moved_to_train": 0,
    }
    sides = {r["source"]["line"] in (2, 3, 4) for r in prepared.eval}
    assert len(sides) <= 1 and len(prepared.train) + len(prepared.eval) == 120


def test_boilerplate_between_files_the_user_split_is_no_leak_but_a_shared_run_is(
    tmp_path, tiny_model_dir
):
    rows = [chat(f"Task {i}", f"{BOILERPLATE}: {text(20, i)}") for i in range(10)]
    shared = text(15, 900)
    rows.append(chat("Quote", shared))
    evals = [chat("Task e", f"{BOILERPLATE}: {text(20, 77)}"), chat("Q", f"So: {shared}")]
    write_jsonl(tmp_path / "eval.jsonl", evals)
    path = project(tmp_path, tiny_model_dir, rows, eval="eval.jsonl")
    with pytest.raises(DataGateError, match=r"data\.allow_leakage"):
        prepare_data(load_config(path))
    report = json.loads((tmp_path / "runs" / "default" / "data" / "validation.json").read_text())
    assert report["leaks"]["examples"] == [f"{tmp_path / 'eval.jsonl'}:2"]
    assert report["boilerplate"]["phrases"][0]["rows"] == 11
    assert report["boilerplate"]["split_groups"] is None


def test_validating_a_bare_file_reports_boilerplate_and_passes_the_leak_gate(
    tmp_path, run_cli, tiny_model_dir
):
    rows = [chat(f"Task {i}, please.", f"{BOILERPLATE}: {text(20, i)}") for i in range(60)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    code, out, err = run_cli("data", "validate", str(train), f"model.name={tiny_model_dir}")
    assert code == 0, err + out
    said = " ".join(out.split())
    assert "gate data.allow_leakage: pass (0 vs False)" in said
    # 17 words ("step by step" ends it) make five 13-word runs.
    assert "boilerplate: 5 runs of 13 answer words in 5+ rows each" in said
    assert (
        f'"of course i can help you with that here is what you ..." in 60 rows ({train}:1' in said
    )


def test_the_automatic_split_of_templated_rows_leaves_no_leak(tmp_path, tiny_model_dir):
    """Templated rows (the OpenAI example's tickets: two names changed in a 30-word row) crowd
    the near-duplicate index's buckets. The split's grouping and its own leak check must find
    every pair the full train x eval check finds, whatever the seed, so the gate never refuses
    a split the tool chose."""
    from tunewright.data import checks
    from tunewright.data.boilerplate import LEAK_WORDS, AnswerNgrams
    from tunewright.data.prepare import analyze
    from tunewright.data.records import answer_text

    tickets = Path(__file__).resolve().parents[2] / "examples" / "openai" / "tickets.jsonl"
    for seed in (0, 1, 42):
        path = make_project(
            tmp_path / str(seed),
            model=tiny_model_dir,
            rows=tickets.read_bytes(),
            data={"format": "openai"},
            seed=seed,
        )
        analysis = analyze(load_config(path))
        assert len(analysis.train) + len(analysis.eval) == 60
        records = analysis.train + analysis.eval
        ngrams = AnswerNgrams.of([answer_text(r) for r in records], LEAK_WORDS)
        leaks = checks.find_leaks(analysis.train, analysis.eval, boilerplate=ngrams.hashes)
        assert leaks == [], (seed, leaks)


def test_leaks_the_split_still_makes_move_to_train():
    from tunewright.data.prepare import _leaks_to_train

    calls = []

    def leaking(train, eval):  # eval row 7 leaks from train row 1, then row 8 from row 7
        calls.append((list(train), list(eval)))
        return {k for k, i in enumerate(eval) if (i == 7 and 1 in train) or (i == 8 and 7 in train)}

    train, eval, moved = _leaks_to_train([0, 1, 2], [7, 8, 9], leaking)
    assert (train, eval, moved) == ([0, 1, 2, 7, 8], [9], 2)
    assert len(calls) == 3  # until nothing leaks


def test_mixing_replay_data_by_weight_end_to_end(tmp_path, tiny_model_dir, run_cli):
    """A narrow task mixed with general replay rows at 25%: the report shows each source's
    share before and after, train.jsonl holds the mix, and every input row is accounted for."""
    import yaml

    write_jsonl(tmp_path / "task.jsonl", [good(i) for i in range(60)])
    replay = [
        chat(f"General question {i}: {long_text(i, 20)}", f"General answer {i}. {long_text(i, 25)}")
        for i in range(300)
    ]
    write_jsonl(tmp_path / "replay.jsonl", replay)
    config = {
        "name": "mix",
        "model": {"name": str(tiny_model_dir)},
        "data": {
            "train": ["task.jsonl", {"path": "replay.jsonl", "weight": 0.25}],
            "eval_fraction": 0.1,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    code, out, err = run_cli("data", "prepare", str(path))
    assert code == 0, err
    data_dir = tmp_path / "runs" / "mix" / "data"
    report = json.loads((data_dir / "validation.json").read_text())
    task_entry, replay_entry = report["mix"]
    rows = report["rows"]
    task_train = task_entry["rows_after"]
    assert task_train == task_entry["rows_before"] and task_entry["left_out"] == 0
    # Replay is a quarter of the mixed train rows; the task fills the rest, each row once.
    assert replay_entry["rows_after"] == round(task_train / 0.75 * 0.25)
    assert replay_entry["share_after"] == pytest.approx(0.25, abs=0.01)
    assert replay_entry["share_before"] > 0.7
    train_rows = [json.loads(x) for x in (data_dir / "train.jsonl").read_text().splitlines()]
    files = Counter(Path(r["source"]["file"]).name for r in train_rows)
    assert files == {"task.jsonl": task_train, "replay.jsonl": replay_entry["rows_after"]}
    assert rows["train"] == len(train_rows) and rows["repeats"] == 0
    assert rows["train"] + rows["eval"] + rows["rejected"] + rows["left_out"] == 360
    assert replay_entry["eval_rows"] >= 1  # eval keeps its natural share
    assert "mix (training rows" in out and "replay.jsonl" in out
