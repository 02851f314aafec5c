"""`tunewright import-config` on LLaMA-Factory and Axolotl configs written the way their users
write them (tests/fixtures/peers): every source key gets a row, every written key names its
source, and the result passes `tunewright validate`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tunewright.config.peers.importer import translate_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "peers"
LLAMA_FACTORY = sorted((FIXTURES / "llamafactory").glob("*.yaml"))
AXOLOTL = sorted((FIXTURES / "axolotl").glob("*.yml"))
# What `validate` may still say on a machine without the GPU the source config was written for.
DEVICE_ONLY = ("this is cpu", "flash_attn package", "CUDA GPU", "CUDA only")


def imported(run_cli, tmp_path: Path, source: Path) -> tuple[Path, str]:
    """Copy the peer's project into `tmp_path`, import `source` there; (config path, table)."""
    project = tmp_path / source.parent.name
    shutil.copytree(source.parent, project)
    out = project / f"{source.stem}.tunewright.yaml"
    code, table, err = run_cli(
        "import-config", str(project / source.name), "--out", str(out), "--base", str(project)
    )
    assert code == 0, err
    return out, table


@pytest.mark.parametrize("source", LLAMA_FACTORY + AXOLOTL, ids=lambda p: p.name)
def test_import_covers_every_key_and_validates(run_cli, tmp_path, source):
    out, _ = imported(run_cli, tmp_path, source)
    raw = yaml.safe_load(source.read_text())
    # The printed table wraps long keys; its rows are these.
    translation = translate_file(out.parent / source.name, out, out.parent)
    listed = {part for row in translation.rows for part in row.key.split(", ")}
    missing = [key for key in raw if key not in listed]
    assert not missing, f"source keys without a row: {missing}"
    for row in translation.rows:  # whatever did not translate as it was says why
        assert row.status == "translated" or row.note, row

    text = out.read_text()
    for line in text.splitlines():
        if "# from: " in line and not line.lstrip().startswith("#"):
            for key in line.split("# from: ")[1].split(", "):
                assert key.split(" (")[0] in raw or key.endswith("(unset)") or "(unset" in key, line

    code, stdout, err = run_cli("validate", str(out))
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert code == 0 or all(any(d in p for d in DEVICE_ONLY) for p in problems), err
    assert code != 0 or "ok" in stdout


def load(out: Path) -> dict:
    return yaml.safe_load(out.read_text())


def test_llama_factory_lora_sft_translates_method_data_and_defaults(run_cli, tmp_path):
    out, table = imported(run_cli, tmp_path, FIXTURES / "llamafactory" / "llama3_lora_sft.yaml")
    config = load(out)
    assert config["model"] == {
        "name": "meta-llama/Meta-Llama-3-8B-Instruct",
        "chat_template": "llama3",
        "trust_remote_code": True,
    }
    train = config["train"]
    assert (train["method"], train["objective"]) == ("lora", "sft")
    # lora_target: all; lora_alpha and lora_dropout unset there: their defaults, rank x 2 and 0
    assert train["lora"] == {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
    assert (train["batch_size"], train["grad_accum"], train["epochs"]) == (1, 8, 3)
    assert (train["precision"], train["report_to"], train["eval_every"]) == ("bf16", [], 500)
    assert (config["runs_dir"], config["name"]) == ("saves/llama3-8b/lora", "sft")
    assert config["data"]["train"] == [
        {
            "path": "data/identity.json",
            "format": "alpaca",
            "columns": {
                "instruction": "question",
                "input": "input",
                "output": "answer",
                "system": "persona",
            },
        },
        {
            "path": "data/alpaca_en_demo.json",
            "format": "alpaca",
            "columns": {"instruction": "instruction", "input": "input", "output": "output"},
        },
    ]
    assert "max_samples" in table and "not supported" in table
    assert "    r: 8  # from: lora_rank\n" in out.read_text()


def test_llama_factory_qlora_dpo_and_kto(run_cli, tmp_path):
    qlora = load(
        imported(run_cli, tmp_path / "a", FIXTURES / "llamafactory" / "qwen_qlora_sft.yaml")[0]
    )
    assert qlora["train"]["method"] == "qlora"
    assert qlora["train"]["lora"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert qlora["train"]["lora"]["use_rslora"] is True
    assert qlora["model"]["attn_implementation"] == "flash_attention_2"
    assert qlora["train"]["optimizer"] == "paged_adamw_8bit"
    chats = qlora["data"]["train"][0]
    assert chats["format"] == "sharegpt"
    assert chats["messages"]["role"] == "speaker"
    assert chats["messages"]["speakers"]["agent"] == "assistant"

    dpo = load(
        imported(run_cli, tmp_path / "b", FIXTURES / "llamafactory" / "llama3_lora_dpo.yaml")[0]
    )
    assert dpo["train"]["objective"] == "dpo"
    assert dpo["train"]["preference"] == {"beta": 0.1, "loss_type": "sigmoid"}
    assert dpo["data"]["train"][0]["format"] == "preference"

    kto = load(
        imported(run_cli, tmp_path / "c", FIXTURES / "llamafactory" / "llama3_lora_kto.yaml")[0]
    )
    assert kto["train"]["objective"] == "kto"
    assert kto["data"]["train"][0]["format"] == "feedback"
    assert kto["data"]["train"][0]["columns"]["label"] == "label"


def test_llama_factory_deepspeed_path_is_made_relative_to_the_written_config(run_cli, tmp_path):
    out, _ = imported(run_cli, tmp_path, FIXTURES / "llamafactory" / "qwen_full_sft_ds.yaml")
    config = load(out)
    assert config["train"]["method"] == "full"
    assert config["train"]["distributed"] == "deepspeed"
    assert (out.parent / config["train"]["deepspeed"]["config"]).is_file()


def test_axolotl_qlora_dpo_multi_and_fsdp(run_cli, tmp_path):
    qlora = load(imported(run_cli, tmp_path / "a", FIXTURES / "axolotl" / "llama3_qlora.yml")[0])
    assert qlora["train"]["method"] == "qlora"
    assert qlora["train"]["lora"] == {
        "r": 32,
        "alpha": 16,
        "dropout": 0.05,
        "target_modules": "all-linear",
    }
    assert (qlora["train"]["precision"], qlora["data"]["eval_fraction"]) == ("auto", 0.05)
    assert qlora["train"]["gradient_checkpointing"] is True

    dpo = load(imported(run_cli, tmp_path / "b", FIXTURES / "axolotl" / "llama3_dpo.yml")[0])
    assert (dpo["train"]["objective"], dpo["train"]["preference"]["beta"]) == ("dpo", 0.1)
    intel, chat = dpo["data"]["train"]
    assert intel == {
        "path": "data/pairs_intel.jsonl",
        "format": "preference",
        "columns": {"prompt": "question"},
    }
    assert chat["columns"] == {
        "conversations": "conversation",
        "chosen": "chosen",
        "rejected": "rejected",
    }
    assert dpo["train"]["eval_every"] == dpo["train"]["save_every"] == "epoch"

    multi = load(imported(run_cli, tmp_path / "c", FIXTURES / "axolotl" / "qwen_multi.yml")[0])
    assert [e["format"] for e in multi["data"]["train"]] == [
        "alpaca",
        "sharegpt",
        "alpaca",
        "alpaca",
    ]
    assert multi["data"]["eval"][0]["columns"] == {"instruction": "question", "output": "answer"}
    assert multi["data"]["train"][3]["columns"] == {
        "instruction": "task",
        "input": "context",
        "output": "answer",
    }
    assert multi["model"]["chat_template"] == "qwen"

    fsdp = load(
        imported(run_cli, tmp_path / "d", FIXTURES / "axolotl" / "mistral_full_fsdp.yml")[0]
    )
    assert fsdp["train"]["distributed"] == "fsdp"
    assert fsdp["train"]["fsdp"] == {"sharding": "full_shard", "cpu_offload": True}
    assert fsdp["model"]["chat_template"] == "mistral"


def test_run_and_validate_on_a_peer_config_print_the_import_command(run_cli, tmp_path):
    for source in (FIXTURES / "llamafactory" / "llama3_lora_sft.yaml", AXOLOTL[0]):
        for command in ("validate", "run"):
            code, _, err = run_cli(command, str(source))
            assert code == 1
            peer = "a LLaMA-Factory" if source.suffix == ".yaml" else "an Axolotl"
            assert f"this is {peer} config" in err
            expected = f"tunewright import-config {source} --out "
            assert expected + str(source.with_name(f"{source.stem}.tunewright.yaml")) in err


def test_unknown_keys_bad_values_and_non_peer_configs(run_cli, tmp_path):
    source = tmp_path / "a.yml"
    source.write_text(
        "base_model: some/model\nmicro_batch_size: 2\nmy_custom_flag: 3\nlr_scheduler: one_cycle\n"
    )
    code, table, err = run_cli("import-config", str(source))
    assert code == 0, err
    assert re.search(r"my_custom_flag\s+│ not supported", table)
    assert re.search(r"lr_scheduler\s+│ not supported", table)
    assert (tmp_path / "a.tunewright.yaml").is_file()
    code, _, err = run_cli("import-config", str(source))
    assert code == 1 and "already exists" in err

    bad = tmp_path / "b.yml"
    bad.write_text("base_model: some/model\nmicro_batch_size: 0\n")
    code, _, err = run_cli("import-config", str(bad))
    assert (
        code == 1
        and "train.batch_size (from micro_batch_size): must be > 0 or 'auto' (got 0)" in err
    )
    assert not (tmp_path / "b.tunewright.yaml").exists()

    ours = tmp_path / "ours.yaml"
    ours.write_text("train:\n  method: lora\n")
    code, _, err = run_cli("import-config", str(ours))
    assert code == 1 and "not a LLaMA-Factory or Axolotl config" in err


def test_axolotl_inline_jinja_template_is_written_beside_the_config(run_cli, tmp_path):
    source = tmp_path / "j.yml"
    jinja = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    source.write_text(
        yaml.safe_dump(
            {
                "base_model": "x/y",
                "adapter": "lora",
                "chat_template": "jinja",
                "chat_template_jinja": jinja,
            }
        )
    )
    code, _, err = run_cli("import-config", str(source))
    assert code == 0, err
    config = load(tmp_path / "j.tunewright.yaml")
    assert (tmp_path / config["model"]["chat_template"]).read_text() == jinja


def test_data_entries_with_their_own_settings_report_their_own_mistakes(run_cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "data:\n  train:\n    - path: a.jsonl\n      formatt: alpaca\n"
        "    - path: b.jsonl\n      messages: {speakers: {bot: robot}}\n    - 3\n"
    )
    code, _, err = run_cli("validate", str(config))
    assert code == 1 and "3 problems" in err
    assert "data.train[0].formatt: unknown key; did you mean 'format'?" in err
    assert "data.train[1].messages.speakers.bot: must be one of 'user'" in err
    assert "data.train[2]: must be a string (got 3)" in err
