"""Secrets never reach a file, the output or the request log.

Every variable that tunewright, or a library it drives, reads a secret from is set to a fake
token of its own, and the config holds one more in `serve.api_keys`. The whole workflow then
runs on the tiny model - validate, data prepare, train (TensorBoard, offline W&B and MLflow), eval,
merge, a dry-run export to the hub, and `tunewright serve` in a process of its own answering the
official openai client with the right keys and a wrong one - and no token may appear in any
file of the project (binary ones included), in anything a command printed, or in the request
log. The config file the user wrote is the only place the config's key may be.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from tests.support.processes import started
from tests.support.projects import make_project

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

ENV_SECRETS = {
    name: f"tw-leak-{name.lower().replace('_', '-')}-7c41e9d2b8a3f056"
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "OPENAI_API_KEY",
        "TEAM_OPENAI_KEY",  # the variable openai.api_key_env names below
        "WANDB_API_KEY",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
        "TUNEWRIGHT_API_KEYS",
    )
}
CONFIG_KEY = "sk-config-Zq8r2Vx6Lm4Tn0Pw"  # serve.api_keys, written in config.yaml
WRONG_KEY = "sk-wrong-Hb7Kc3Df9Gj1Mn5Q"  # sent by a client, refused
SECRETS = [*ENV_SECRETS.values(), CONFIG_KEY, WRONG_KEY]


def project(folder: Path, model: Path) -> Path:
    return make_project(
        folder,
        model=model,
        name="secret",
        data={"min_words": 1},
        train={
            "max_steps": 2,
            "batch_size": 4,
            "grad_accum": 1,
            "report_to": ["tensorboard", "wandb", "mlflow"],
        },
        eval={
            "max_new_tokens": 4,
            "max_examples": 4,
            "bootstrap_samples": 20,
            "suites": [],
        },
        export={"dtype": "float16"},
        serve={"api_keys": [CONFIG_KEY], "log_content": True, "max_tokens": 8},
        openai={"api_key_env": "TEAM_OPENAI_KEY"},
    )


def test_no_secret_reaches_a_file_the_output_or_the_request_log(
    tmp_path, tiny_model_dir, run_cli, monkeypatch, caplog
):
    for name, token in ENV_SECRETS.items():
        monkeypatch.setenv(name, token)
    monkeypatch.setenv("WANDB_MODE", "offline")  # with a key set, W&B would go online
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # anything written relative to the cwd is walked too
    config = str(project(tmp_path, tiny_model_dir))
    printed: list[str] = []

    def tunewright(*args: str) -> str:
        code, out, err = run_cli(*args)
        printed.extend((out, err))
        assert code == 0, err
        return out + err

    output = tunewright("validate", config)
    assert "serve.api_keys[0] looks like a secret (value not shown)" in output
    tunewright("data", "prepare", config)
    tunewright("train", config)
    tunewright("eval", config)
    tunewright("merge", config)
    output = tunewright("export", config, "--push", "me/tuned", "--dry-run")
    assert "nothing was sent" in output

    run_dir = tmp_path / "runs" / "secret"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "tunewright", "serve", config, "--port", "0"]
    with started(command, env=dict(os.environ), log=log) as server:
        url = wait_for_url(server, log)
        for key in (ENV_SECRETS["TUNEWRIGHT_API_KEYS"], CONFIG_KEY):
            assert ask(url, key).model == "secret"
        with pytest.raises(openai.AuthenticationError, match="Incorrect API key provided"):
            ask(url, WRONG_KEY)
        server.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        server.wait()

    request_log = run_dir / "serve" / "requests.jsonl"
    statuses = [json.loads(line)["status"] for line in request_log.read_text().splitlines()]
    assert statuses == [200, 200, 401]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != Path(config)]
    stages = {p.relative_to(run_dir).parts[0] for p in files if run_dir in p.parents}
    assert {"data", "train", "eval", "export", "serve", "config.yaml"} <= stages
    assert any(p.name.startswith("events.out.tfevents") for p in files)
    assert (run_dir / "train" / "mlflow.db").is_file()
    assert list((run_dir / "train" / "wandb").glob("offline-run-*/*.wandb"))
    for secret in SECRETS:
        found = [str(p.relative_to(tmp_path)) for p in files if secret.encode() in p.read_bytes()]
        assert not found, f"{secret} written to {found}"
        assert not [text for text in printed if secret in text], f"{secret} printed"
        assert secret not in caplog.text
    assert "<redacted>" in (run_dir / "config.yaml").read_text()


def wait_for_url(server, log: Path) -> str:
    """The server's base URL, once it has announced it (the model is loaded by then)."""
    while True:
        found = re.search(r"serving \S+ at (http://127\.0\.0\.1:\d+/v1)", log.read_text())
        if found:
            return found.group(1)
        assert server.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)


def ask(url: str, key: str):
    """A chat completion from the served run, asked with `key`."""
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="secret", messages=[{"role": "user", "content": "Add 2 and 2."}], max_tokens=4
    )


def test_validate_warns_about_a_secret_in_the_file_without_showing_it(tmp_path, run_cli):
    key = "sk-proj-Q7x2Lm9Vb4Nc8Rt1Yw6Pz3Ks5Hd0Jf"
    config = make_project(tmp_path, model=None, data={"system_prompt": f"Call the API with {key}."})
    code, out, err = run_cli("validate", str(config))
    assert code == 0, err
    assert out.startswith("ok ")
    assert f"warning: {config}: data.system_prompt looks like a secret (value not shown)" in err
    assert "TUNEWRIGHT_API_KEYS" in err and "HF_TOKEN" in err
    assert key not in out + err and key[:10] not in out + err


def test_validate_says_nothing_of_secrets_in_a_config_without_any(tmp_path, run_cli):
    config = make_project(tmp_path, model=None, openai={"api_key_env": "TEAM_OPENAI_KEY"})
    code, _, err = run_cli("validate", str(config))
    assert code == 0, err
    assert "secret" not in err
