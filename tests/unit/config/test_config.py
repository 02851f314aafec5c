from pathlib import Path

import pytest
import yaml

from tunewright.cli import preflight_problems
from tunewright.config import Config, config_to_yaml, load_config
from tunewright.config.doc import reference_markdown, starter_yaml
from tunewright.errors import ConfigError, InputFileError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path | None, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


def test_defaults_load_without_a_file():
    config = load_config(None)
    assert config.model.name == "smollm2-135m-instruct"
    assert config.train.method == "lora"
    assert config.train.lora.r == 16


def test_three_mistakes_are_all_reported_with_key_paths(tmp_path):
    path = write(tmp_path, "train:\n  lora:\n    r: 0\n  methd: lora\ndata:\n  eval_fraction: 2\n")
    problems = problems_of(path)
    assert problems == [
        "data.eval_fraction: must be < 1.0 (got 2)",
        "train.lora.r: must be > 0 (got 0)",
        "train.methd: unknown key; did you mean 'method'?",
    ]


def test_union_with_auto_gives_one_line(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 0\n  batch_size: lots\n")
    assert sorted(problems_of(path)) == [
        "train.batch_size: must be an integer or 'auto' (got 'lots')",
        "train.epochs: must be > 0 or 'auto' (got 0)",
    ]


def test_synonyms_from_other_tools_are_suggested(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.001\n  num_train_epochs: 2\n")
    assert sorted(problems_of(path)) == [
        "train.lr: unknown key; did you mean 'learning_rate'?",
        "train.num_train_epochs: unknown key; did you mean 'epochs'?",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", "eval.general_probe: replaced; use eval.suites: [builtin]"),
        ("false", "eval.general_probe: replaced; use eval.suites: []"),
    ],
)
def test_the_generation_probe_key_says_use_suites(tmp_path, value, expected):
    assert problems_of(write(tmp_path, f"eval:\n  general_probe: {value}\n")) == [expected]
    assert load_config(write(tmp_path, "eval: {}\n")).eval.suites == ["builtin"]


def test_unknown_top_level_section_lists_known_keys(tmp_path):
    path = write(tmp_path, "zzz: 1\n")
    (problem,) = problems_of(path)
    assert problem.startswith("zzz: unknown key; known keys: name, runs_dir, seed, model")


def test_literal_error_names_choices(tmp_path):
    (problem,) = problems_of(write(tmp_path, "train:\n  method: lorra\n"))
    assert problem.startswith("train.method: must be one of 'full', 'lora'")
    assert problem.endswith("(got 'lorra')")


def test_list_index_in_key_path(tmp_path):
    (problem,) = problems_of(write(tmp_path, "train:\n  report_to: [tensorboard, comet]\n"))
    assert problem.startswith("train.report_to[1]: must be one of")


def test_overrides_apply_and_are_validated(tmp_path):
    path = write(tmp_path, "train:\n  lora:\n    r: 8\n")
    config = load_config(path, ["train.lora.r=4", "train.epochs=2", "data.train=x.jsonl"])
    assert config.train.lora.r == 4
    assert config.train.epochs == 2
    assert config.data.train == ["x.jsonl"]
    assert problems_of(path, ["train.lora.r=-1", "bogus"]) == [
        "override 'bogus': expected key.sub=value",
        "train.lora.r: must be > 0 (got -1)",
    ]


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "train:\n  method: lora\n   bad: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source.startswith(f"{path}:3")


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(InputFileError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_relative_paths_resolve_against_config_folder(tmp_path):
    sub = tmp_path / "proj"
    sub.mkdir()
    (sub / "train.jsonl").write_text("{}\n")
    config = load_config(write(sub, "data:\n  train: train.jsonl\n"))
    assert config.resolve(config.data.train[0]) == sub / "train.jsonl"
    assert config.run_dir == sub / "runs" / "default"
    assert preflight_problems(config) == []


def test_preflight_reports_missing_files_and_unknown_model(tmp_path):
    config = load_config(write(tmp_path, "model:\n  name: nonsense\ndata:\n  train: [a.jsonl]\n"))
    problems = preflight_problems(config)
    assert problems[0] == f"data.train[0]: not found: {tmp_path / 'a.jsonl'}"
    assert problems[1].startswith("model.name: 'nonsense' is not an embedded model")


def test_secrets_are_redacted_when_saved():
    config = load_config(None, ["serve.api_keys=[sk-very-secret]"])
    assert config.serve.api_keys[0].get_secret_value() == "sk-very-secret"
    text = config_to_yaml(config)
    assert "sk-very-secret" not in text
    assert "<redacted>" in text


def test_starter_yaml_is_valid_and_documents_every_field():
    text = starter_yaml()
    Config.model_validate(yaml.safe_load(text))
    for section in ("model", "data", "train", "eval", "export", "serve"):
        for name, field in Config.model_fields[section].annotation.model_fields.items():
            assert f"# {field.description}" in text, f"{section}.{name} undocumented"


def test_every_field_has_a_description():
    def walk(model, prefix=""):
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            assert field.description, f"{prefix}{name} has no description"
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation, f"{prefix}{name}.")

    walk(Config)


def test_reference_markdown_lists_nested_keys():
    text = reference_markdown()
    assert "| `train.lora.r` | `16` | LoRA rank. |" in text
    assert "| `data.eval_fraction` | `0.1` |" in text


def test_readme_config_reference_is_current():
    from pathlib import Path

    from tunewright.config.doc import END, START

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert block == "\n" + reference_markdown(), "run `make docs` to regenerate it"
