"""Secrets written into a config are found by shape and named by key path, never shown."""

from __future__ import annotations

import pytest

from tunewright.config import load_config
from tunewright.config.secrets import holds_secret, secret_paths
from tunewright.errors import ConfigError

OPENAI_KEY = "sk-proj-Q7x2Lm9Vb4Nc8Rt1Yw6Pz3Ks5Hd0Jf"
LEGACY_OPENAI_KEY = "sk-" + "aB3dE5gH7jK9mN1pQ2rS4tU6vW8xY0zA" * 2
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"  # 34 letters, as HF issues them
HEX_TOKEN = "9f3c1e7a5b2d4f6a8c0e1b3d5f7a9c2e"


@pytest.mark.parametrize(
    ("raw", "paths"),
    [
        ({"serve": {"api_keys": ["k1", "k2"]}}, ["serve.api_keys[0]", "serve.api_keys[1]"]),
        ({"serve": {"api_keys": "k1"}}, ["serve.api_keys"]),  # the wrong type counts too
        ({"data": {"system_prompt": f"Use {OPENAI_KEY} to call it."}}, ["data.system_prompt"]),
        ({"openai": {"api_key_env": LEGACY_OPENAI_KEY}}, ["openai.api_key_env"]),
        ({"model": {"name": HF_TOKEN}}, ["model.name"]),
        ({"train": {"deepspeed": {"auth_token": HEX_TOKEN}}}, ["train.deepspeed.auth_token"]),
        ({"tokens": [{"wandb": "Xk29dLq0Pz7Rm4Tn8Vb1"}]}, ["tokens[0].wandb"]),
        ({"db_password": "hQ8#zL2!pW5@rT9$"}, ["db_password"]),
        ({"SECRET": {"value": "a1B2c3D4e5F6g7H8i9J0"}}, ["SECRET.value"]),
    ],
)
def test_secrets_are_named_by_key_path(raw, paths):
    assert secret_paths(raw) == paths


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"serve": {"api_keys": []}},
        {"serve": {"api_keys": None}},
        {"openai": {"api_key_env": "OPENAI_API_KEY"}},
        {"openai": {"api_key_env": "TEAM_OPENAI_API_KEY_2"}},  # a variable's name, not a key
        {"eval": {"max_new_tokens": 128}, "serve": {"max_tokens": 512}},  # numbers
        {"data": {"train": "data/sk-learn-examples-with-a-long-name.jsonl"}},  # one kind of char
        {"model": {"name": "hf_internal_testing_tiny_random_llama"}},
        {"data": {"system_prompt": "Answer briefly, and ask for a key if you need one."}},
        {"api_token": "short1A"},  # too short to be generated
        {"token_file": "/home/me/.cache/Tokens/Hub2024Token.txt"},  # a path
        {"secret_word": "correct horse Battery 9"},  # spaces: a phrase
        {"password_hint": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA1"},  # long but not varied
        {"name": HEX_TOKEN},  # random-looking, but under no secret-like name
    ],
)
def test_ordinary_values_are_not_secrets(raw):
    assert secret_paths(raw) == []


def test_holds_secret_looks_inside_containers():
    assert holds_secret("serve.api_keys[1]", {"a": 1})
    assert holds_secret("data.columns", {"x": f"see {OPENAI_KEY}"})
    assert not holds_secret("data.columns", {"output": "response"})


@pytest.mark.parametrize(
    "text",
    [f"serve:\n  api_keys: {OPENAI_KEY}\n", f"serve:\n  api_keys: [{{token: {OPENAI_KEY}}}]\n"],
)
def test_a_secret_of_the_wrong_type_is_not_echoed_in_the_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    shown = " ".join(caught.value.problems)
    assert shown.startswith("serve.api_keys") and "looks like a secret, not shown" in shown
    assert OPENAI_KEY[:12] not in shown


def test_other_errors_still_show_the_value(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("train:\n  lora:\n    r: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ["train.lora.r: must be > 0 (got 0)"]
