import json

import pytest

from tunewright.errors import ModelNotFoundError
from tunewright.models import (
    count_parameters,
    list_models,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)


def test_local_folder_resolves_and_loads(tiny_model_dir):
    folder = resolve_model(str(tiny_model_dir))
    assert folder == tiny_model_dir.resolve()
    model = load_causal_lm(folder)
    tokenizer = load_tokenizer(folder)
    assert count_parameters(folder) == sum(p.numel() for p in model.parameters())
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n"


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"no config\.json") as info:
        resolve_model(str(tmp_path))
    assert "save_pretrained" in info.value.hint


def test_unknown_name_lists_embedded_models():
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("not-a-model")
    assert "smollm2-135m-instruct" in info.value.hint


def test_hub_id_offline_fails_with_local_folder_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="Hugging Face Hub") as info:
        resolve_model("someone/some-model")
    assert "folder" in info.value.hint


def test_unprepared_embedded_model_is_not_converted_when_asked_not_to(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEWRIGHT_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not prepared") as info:
        resolve_model("smollm2-135m-instruct", prepare=False)
    assert "tunewright models prepare smollm2-135m-instruct" in info.value.hint
    assert not any(tmp_path.iterdir())


def test_list_models_shows_the_default_first():
    rows = list_models()
    assert rows[0]["name"] == "smollm2-135m-instruct"
    assert {row["kind"] for row in rows} == {"causal-lm", "encoder"}
    json.dumps(rows)
