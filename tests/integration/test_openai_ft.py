"""`tunewright openai ...` end to end, against a local stand-in for OpenAI's API.

The stand-in (tests/support/openai_stub.py) speaks the files and fine-tuning wire protocol to the
official `openai` client; its jobs move one status every 0.2 s, so a whole job takes ~1.5 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("tiktoken")
pytest.importorskip("fastapi")

from tests.support.openai_stub import StubServer
from tests.support.projects import make_project

from tunewright.config.openai_section import RFT_MODEL

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "openai"
KEY = "sk-test-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"  # must never reach a file or the output


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with StubServer(api_key=KEY, step_seconds=0.2) as server:
        yield server


def make_config(
    tmp_path: Path,
    stub: StubServer,
    rows: list[dict] | bytes | None = None,
    data_format: str = "openai",
    train: dict[str, object] | None = None,
    **openai: object,
) -> Path:
    """A config for the example's data (or `rows`) in tickets.jsonl, with the stub as base
    URL; no model (the OpenAI model is openai.model's default) and no report_to. `train` is
    merged into the train section."""
    section = {"base_url": stub.base_url, "poll_seconds": 0.05, "suffix": "triage", **openai}
    return make_project(
        tmp_path,
        model=None,
        rows=(EXAMPLE / "tickets.jsonl").read_bytes() if rows is None else rows,
        name="oa",
        data={"train": "tickets.jsonl", "format": data_format},
        train={"backend": "openai", "report_to": None, **(train or {})},
        openai=section,
    )


def assert_key_nowhere(tmp_path: Path, *outputs: str) -> None:
    for text in outputs:
        assert KEY not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_submit_wait_follows_the_job_to_success_and_stores_it(run_cli, tmp_path, stub):
    config = make_config(tmp_path, stub)
    code, out, err = run_cli("openai", "submit", str(config), "--wait")
    assert code == 0, err
    folder = tmp_path / "runs" / "oa" / "openai"
    job = json.loads((folder / "job.json").read_text())
    assert f"submitted job {job['id']}" in " ".join(out.split())
    assert job["status"] == "succeeded" and job["model"] == "gpt-4o-mini-2024-07-18"
    assert job["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:stub:triage:")
    assert f"fine-tuned model: {job['fine_tuned_model']}" in out
    # The live display: status changes, events and checkpoints as they came.
    for text in ("status: queued", "status: running", "Fine-tuning job started", "checkpoint"):
        assert text in err
    # What was sent: both converted files, then a job that names them.
    uploaded = dict(stub.uploaded())
    assert uploaded["train.jsonl"] == (folder / "train.jsonl").read_bytes()
    assert uploaded["validation.jsonl"] == (folder / "validation.jsonl").read_bytes()
    request = stub.create_request(job["id"])
    files = json.loads((folder / "files.json").read_text())
    assert request["training_file"] == files["train"]["id"]
    assert request["validation_file"] == files["validation"]["id"]
    auto = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    assert request["method"] == {"type": "supervised", "supervised": {"hyperparameters": auto}}
    assert request["seed"] == 42 and request["suffix"] == "triage"
    assert_run_folder(folder, job)
    assert_key_nowhere(tmp_path, out, err)


def assert_run_folder(folder: Path, job: dict) -> None:
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert names == {
        "check.json",
        "checkpoints.json",
        "events.jsonl",
        "files.json",
        "job.json",
        "manifest.json",
        "results/step_metrics.csv",
        "train.jsonl",
        "validation.jsonl",
    }
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert events[0]["message"].startswith("Validating training file")
    assert events[-1]["message"] == "The job has successfully completed"
    assert len({e["id"] for e in events}) == len(events)  # each event stored once
    checkpoints = json.loads((folder / "checkpoints.json").read_text())
    assert [c["step_number"] for c in checkpoints] == [1, 2, 3]
    assert all("train_loss" in c["metrics"] for c in checkpoints)
    csv = (folder / "results" / "step_metrics.csv").read_text()  # decoded from base64
    assert csv.startswith("step,train_loss,") and len(csv.splitlines()) == 4
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["job_id"] == job["id"] and manifest["job_status"] == "succeeded"
    assert manifest["fine_tuned_model"] == job["fine_tuned_model"]
    check = json.loads((folder / "check.json").read_text())
    # 60 rows, 10% held out; the grouping keeps every near-copy ticket on one side
    assert check["train"]["ok"] and check["train"]["examples"] == 54
    assert check["validation"]["examples"] == 6


def test_job_commands_after_success(run_cli, tmp_path, stub):
    config = str(make_config(tmp_path, stub))
    assert run_cli("openai", "submit", config, "--wait")[0] == 0
    job_id = json.loads((tmp_path / "runs/oa/openai/job.json").read_text())["id"]

    code, out, _ = run_cli("openai", "status", config)
    assert code == 0 and f"job {job_id}: succeeded" in out and "trained tokens: 12,345" in out

    code, out, _ = run_cli("openai", "events", config, "--limit", "2")
    assert code == 0
    assert "New fine-tuned model created" in out and "successfully completed" in out
    assert "Validating" not in out

    code, out, _ = run_cli("openai", "checkpoints", config)
    assert code == 0 and "train_loss" in out and "ckpt-step-3" in out

    code, out, _ = run_cli("openai", "list", config)
    assert code == 0 and job_id in out and "*" in out

    code, _, err = run_cli("openai", "cancel", config)
    assert code == 1 and "already completed" in err


def test_a_failed_job_is_reported_with_its_error(run_cli, tmp_path, stub):
    config = make_config(tmp_path, stub, suffix="fail")
    code, out, err = run_cli("openai", "submit", str(config), "--wait")
    assert code == 1
    message = " ".join(err.split())
    assert "failed: The job failed due to an invalid training file" in message
    assert "(code invalid_training_file, param training_file)" in message
    assert "Traceback" not in err
    job = json.loads((tmp_path / "runs/oa/openai/job.json").read_text())
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_training_file"
    assert_key_nowhere(tmp_path, out, err)


def test_a_job_cancelled_elsewhere_is_reported(run_cli, tmp_path, stub):
    config = make_config(tmp_path, stub, suffix="cancelled")
    code, _, err = run_cli("openai", "submit", str(config), "--wait")
    assert code == 1
    assert "was cancelled" in err and "Traceback" not in err


def test_status_events_checkpoints_list_and_cancel_while_running(run_cli, tmp_path, stub):
    config = str(make_config(tmp_path, stub, suffix="slow"))
    code, out, _ = run_cli("openai", "submit", config)
    assert code == 0 and "follow it: tunewright openai status" in out
    job_id = json.loads((tmp_path / "runs/oa/openai/job.json").read_text())["id"]

    code, out, _ = run_cli("openai", "status", config)
    assert code == 0 and f"job {job_id}: validating_files" in out

    code, out, _ = run_cli("openai", "events", config)
    assert code == 0 and "Validating training file" in out

    code, out, _ = run_cli("openai", "checkpoints", config, job_id)
    assert code == 0 and "no checkpoints yet" in out

    code, out, _ = run_cli("openai", "list", config, "--limit", "5")
    assert code == 0 and job_id in out

    code, out, _ = run_cli("openai", "cancel", config)
    assert code == 0 and f"job {job_id}: cancelled" in out
    saved = json.loads((tmp_path / "runs/oa/openai/job.json").read_text())
    assert saved["status"] == "cancelled"

    code, _, err = run_cli("openai", "status", config, "ftjob-nope")
    assert code == 1 and "OpenAI error 404" in err and "fine_tuning_job_id" in err


def test_missing_key_fails_before_any_work(run_cli, tmp_path, stub, monkeypatch):
    config = make_config(tmp_path, stub)
    monkeypatch.delenv("OPENAI_API_KEY")
    code, _, err = run_cli("openai", "submit", str(config))
    assert code == 1
    assert "no OpenAI API key: OPENAI_API_KEY is not set" in err and "hint:" in err
    assert not (tmp_path / "runs").exists()
    assert stub.state.requests == []
    code, _, err = run_cli("openai", "status", str(config), "ftjob-x")
    assert code == 1 and "OPENAI_API_KEY is not set" in err


def test_key_from_another_variable_and_a_rejected_key(run_cli, tmp_path, stub, monkeypatch):
    monkeypatch.setenv("TEAM_OPENAI_KEY", "sk-wrong-0000000000000000000000000000")
    config = make_config(tmp_path, stub, api_key_env="TEAM_OPENAI_KEY")
    code, out, err = run_cli("openai", "submit", str(config))
    assert code == 1
    assert "OpenAI error 401: Incorrect API key provided" in " ".join(err.split())
    assert "hint: Check the key in TEAM_OPENAI_KEY" in " ".join(err.split())
    assert "sk-wrong-0000000000000000000000000000" not in out + err
    assert_key_nowhere(tmp_path, out, err)


def test_data_openai_would_refuse_is_not_uploaded(run_cli, tmp_path, stub):
    lines = (EXAMPLE / "tickets.jsonl").read_text().splitlines()[:9]  # 8 train after the split
    config = make_config(tmp_path, stub, rows=("\n".join(lines) + "\n").encode())
    code, _, err = run_cli("openai", "submit", str(config))
    assert code == 1
    message = " ".join(err.split())
    assert "nothing was uploaded" in message and "too_few_examples" in message
    assert stub.uploaded() == []
    check = json.loads((tmp_path / "runs/oa/openai/check.json").read_text())
    assert not check["train"]["ok"]
    assert not (tmp_path / "runs/oa/openai/manifest.json").exists()


def greeting_pairs(count: int) -> list[dict]:
    return [
        {
            "prompt": f"Write a friendly greeting for customer number {i}.",
            "chosen": f"Hello and welcome, dear customer number {i}!",
            "rejected": f"what do you want, number {i}",
        }
        for i in range(count)
    ]


def test_objective_dpo_sends_preference_pairs_with_beta(run_cli, tmp_path, stub):
    config = make_config(
        tmp_path,
        stub,
        rows=greeting_pairs(30),
        data_format="preference",
        train={"objective": "dpo", "preference": {"beta": 0.2}},
        hyperparameters={"n_epochs": 2},
    )
    code, out, err = run_cli("openai", "submit", str(config))
    assert code == 0, err
    assert "OpenAI dpo JSONL" in err and "dpo, ~" in " ".join(out.split())
    job_id = json.loads((tmp_path / "runs/oa/openai/job.json").read_text())["id"]
    hyper = {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto", "beta": 0.2}
    assert stub.create_request(job_id)["method"] == {
        "type": "dpo",
        "dpo": {"hyperparameters": hyper},
    }
    first = json.loads(dict(stub.uploaded())["train.jsonl"].splitlines()[0])
    assert set(first) == {"input", "preferred_output", "non_preferred_output"}
    assert first["preferred_output"][0]["content"].startswith("Hello and welcome")
    manifest = json.loads((tmp_path / "runs/oa/openai/manifest.json").read_text())
    assert manifest["method"] == "dpo"


def test_objective_dpo_with_auto_beta_leaves_it_to_openai(run_cli, tmp_path, stub):
    config = make_config(
        tmp_path,
        stub,
        rows=greeting_pairs(30),
        data_format="preference",
        train={"objective": "dpo"},
    )
    code, _, err = run_cli("openai", "submit", str(config), "--wait")
    assert code == 0, err
    job = json.loads((tmp_path / "runs/oa/openai/job.json").read_text())
    sent = stub.create_request(job["id"])["method"]["dpo"]["hyperparameters"]
    assert "beta" not in sent
    assert job["method"]["type"] == "dpo"


def test_objective_dpo_refuses_chat_data_naming_the_objective(run_cli, tmp_path, stub):
    config = make_config(tmp_path, stub, train={"objective": "dpo"})  # the example's chat rows
    code, _, err = run_cli("openai", "submit", str(config))
    message = " ".join(err.split())
    assert code == 1
    assert "cannot be sent as OpenAI dpo data" in message
    assert "train.objective: dpo needs preference pairs" in message
    assert "openai.method" not in message
    assert stub.uploaded() == []


def test_the_old_method_and_beta_keys_fail_with_what_to_use(run_cli, tmp_path, stub):
    config = make_config(
        tmp_path,
        stub,
        rows=greeting_pairs(30),
        data_format="preference",
        method="dpo",
        hyperparameters={"beta": 0.2},
    )
    for command in (["validate"], ["openai", "submit"]):
        code, out, err = run_cli(*command, str(config))
        message = " ".join((out + err).split())
        assert code == 1, command
        assert "openai.method: replaced; use train.objective: dpo" in message
        assert "openai.hyperparameters.beta: replaced; use train.preference.beta: 0.2" in message
    # An override is read the same way; the supervised method is spelled sft now.
    code, _, err = run_cli("validate", str(EXAMPLE / "config.yaml"), "openai.method=supervised")
    assert code == 1 and "openai.method: replaced; use train.objective: sft" in err
    assert stub.uploaded() == []


TRIAGE_GRADERS = '''import json


def category_right(completion, reference, prompt):
    """1 when the answer's category is the reference answer's."""
    try:
        return float(json.loads(completion)["category"] == json.loads(reference)["category"])
    except (ValueError, KeyError, TypeError):
        return 0.0
'''


def test_objective_grpo_is_reinforcement_fine_tuning_graded_by_the_rewards(run_cli, tmp_path, stub):
    (tmp_path / "triage_graders.py").write_text(TRIAGE_GRADERS)
    rewards = [{"type": "exact_match"}, {"python": "triage_graders:category_right", "weight": 0.5}]
    config = make_config(
        tmp_path, stub, train={"objective": "grpo", "rewards": rewards}, model=RFT_MODEL
    )
    code, out, err = run_cli("openai", "submit", str(config), "--wait")
    assert code == 0, err
    assert f"({RFT_MODEL}, reinforcement, billed by training time)" in " ".join(out.split())
    folder = tmp_path / "runs" / "oa" / "openai"
    job = json.loads((folder / "job.json").read_text())
    assert job["status"] == "succeeded" and job["method"]["type"] == "reinforcement"
    # The job's grader: train.rewards as one multi grader with the same weights.
    method = stub.create_request(job["id"])["method"]
    assert method["type"] == "reinforcement"
    grader = method["reinforcement"]["grader"]
    assert grader["type"] == "multi"
    assert grader["calculate_output"] == "exact_match + 0.5 * category_right"
    assert grader["graders"]["exact_match"] == {
        "type": "string_check",
        "name": "exact_match",
        "input": "{{sample.output_text}}",
        "reference": "{{item.reference}}",
        "operation": "eq",
    }
    python = grader["graders"]["category_right"]
    assert python["type"] == "python" and "def category_right(" in python["source"]
    assert job["method"]["reinforcement"]["grader"] == grader  # stored as OpenAI returned it
    # The rows: each ticket's prompt up to the user's turn, and its answer as the reference.
    tickets = [json.loads(line)["messages"] for line in (EXAMPLE / "tickets.jsonl").open()]
    answers = {m[1]["content"]: m[2]["content"] for m in tickets}
    uploaded = dict(stub.uploaded())
    rows = [json.loads(line) for line in uploaded["train.jsonl"].splitlines()]
    assert len(rows) == 54 and all(set(row) == {"messages", "reference"} for row in rows)
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["developer", "user"]
        assert row["reference"] == answers[row["messages"][-1]["content"]]
    assert len(uploaded["validation.jsonl"].splitlines()) == 6
    # The python grader, run as OpenAI runs it on these rows, gives each reference full marks.
    namespace: dict = {}
    exec(compile(python["source"], "grader", "exec"), namespace)
    assert all(namespace["grade"]({"output_text": r["reference"]}, r) == 1.0 for r in rows)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["method"] == "reinforcement" and manifest["billed_tokens_estimate"] is None


def test_objective_grpo_refuses_what_openai_cannot_grade_or_run(run_cli, tmp_path, stub):
    rewards = [
        {"type": "exact_match"},
        {"type": "json_schema", "schema": {"type": "object"}},
    ]
    config = make_config(tmp_path, stub, train={"objective": "grpo", "rewards": rewards})
    for command in (["validate"], ["openai", "submit"]):
        code, out, err = run_cli(*command, str(config))
        message = " ".join((out + err).split())
        assert code == 1, command
        assert "train.rewards[1]: json_schema has no OpenAI grader" in message
        assert "train.rewards[0]" not in message
        assert f"grpo needs a reasoning model: openai.model: {RFT_MODEL}" in message
        assert "Traceback" not in message
    assert stub.uploaded() == [] and not (tmp_path / "runs/oa/openai").exists()


def test_the_stub_refuses_reinforcement_jobs_openai_would_refuse(stub):
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=stub.base_url)
    train = client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune").id
    check = {
        "type": "string_check",
        "name": "check",
        "input": "{{sample.output_text}}",
        "reference": "{{item.reference}}",
        "operation": "eq",
    }

    def refused(model: str, grader: dict) -> str:
        method = {"type": "reinforcement", "reinforcement": {"grader": grader}}
        with pytest.raises(openai.BadRequestError) as info:
            client.fine_tuning.jobs.create(model=model, training_file=train, method=method)
        return str(info.value)

    assert "does not support reinforcement" in refused("gpt-4o-mini-2024-07-18", check)
    assert "method.reinforcement.grader.operation" in refused(
        RFT_MODEL, {**check, "operation": "equals"}
    )
    multi = {"type": "multi", "name": "m", "graders": {"check": check}}
    assert "unknown grader name(s) other" in refused(
        RFT_MODEL, {**multi, "calculate_output": "check + other"}
    )
    assert "must define grade" in refused(
        RFT_MODEL, {"type": "python", "name": "p", "source": "def score(sample, item): return 1"}
    )
    job = client.fine_tuning.jobs.create(
        model=RFT_MODEL,
        training_file=train,
        method={"type": "reinforcement", "reinforcement": {"grader": check}},
    )
    assert job.method.type == "reinforcement"


@pytest.mark.parametrize("objective", ["orpo", "simpo", "kto"])
def test_objectives_openai_has_no_method_for_are_refused(run_cli, tmp_path, stub, objective):
    config = make_config(
        tmp_path,
        stub,
        rows=greeting_pairs(30),
        data_format="preference",
        train={"objective": objective},
    )
    offered = (
        "OpenAI offers supervised (train.objective: sft), dpo (train.objective: dpo) and "
        "reinforcement (train.objective: grpo)"
    )
    code, out, err = run_cli("validate", str(config))
    message = " ".join((out + err).split())
    assert code == 1
    assert f"train.objective: {objective} has no OpenAI fine-tuning method" in message
    assert offered in message
    code, _, err = run_cli("openai", "submit", str(config))
    assert code == 1 and offered in " ".join(err.split())
    assert stub.uploaded() == [] and not (tmp_path / "runs/oa/openai").exists()


def test_submit_refuses_a_local_backend_and_status_needs_a_job(run_cli, tmp_path, stub):
    config = make_config(tmp_path, stub)
    code, _, err = run_cli("openai", "submit", str(config), "train.backend=local")
    assert code == 1 and "train.backend is local" in err
    code, _, err = run_cli("openai", "status", str(config))
    assert code == 1 and "no OpenAI job submitted for run 'oa'" in err


def test_check_command_prints_the_table_and_json(run_cli, tmp_path):
    code, out, _ = run_cli("openai", "check", str(EXAMPLE / "tickets.jsonl"))
    assert code == 0
    flat = " ".join(out.split())
    assert "60 examples" in flat and "epochs: 3" in flat and "billed tokens: ~" in flat
    bad = tmp_path / "bad.jsonl"
    lines = (EXAMPLE / "tickets.jsonl").read_text().splitlines()
    bad.write_text("\n".join([lines[0], "{oops", *lines[1:12]]) + "\n")
    code, out, _ = run_cli("openai", "check", str(bad), "--epochs", "2")
    # Two of these tickets differ only in the customer's name: a near-duplicate warning.
    assert code == 1 and "invalid_json" in out and "1 error, 1 warning" in out
    assert "near-duplicate, similarity 0.89 (first at line 4)" in " ".join(out.split())
    code, out, _ = run_cli("openai", "check", str(bad), "--json")
    report = json.loads(out)
    assert code == 1 and report["checks"][0] == {
        "check": "invalid_json",
        "severity": "error",
        "count": 1,
        "lines": [2],
        "detail": "invalid JSON: Expecting property name enclosed in double quotes at column 2",
    }
    code, _, err = run_cli("openai", "check", str(tmp_path / "missing.jsonl"))
    assert code == 1 and "file not found" in err


def test_following_survives_dropped_connections_but_not_forever():
    import openai

    from tunewright.openai_ft.jobs import MAX_POLL_FAILURES, Update, follow_job

    def dropped() -> Exception:
        return openai.APIConnectionError(request=None)  # type: ignore[arg-type]

    class Flaky:
        def __init__(self, answers: list) -> None:
            self.answers = iter(answers)

        def poll(self) -> Update:
            answer = next(self.answers)
            if isinstance(answer, Exception):
                raise answer
            return answer

    answers = [dropped(), Update({"status": "running"}), dropped(), Update({"status": "succeeded"})]
    updates: list[Update] = []
    retries: list[str] = []
    job = follow_job(Flaky(answers), 0, updates.append, retries.append, sleep=lambda _: None)
    assert job["status"] == "succeeded" and len(updates) == 2
    assert len(retries) == 2 and "APIConnectionError" in retries[0]
    always_down = Flaky([dropped() for _ in range(MAX_POLL_FAILURES + 1)])
    with pytest.raises(openai.APIConnectionError):
        follow_job(always_down, 0, updates.append, sleep=lambda _: None)
