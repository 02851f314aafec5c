import pytest

from tunewright.config import load_config
from tunewright.exporting.merge import MergeUnsupportedError, check_mergeable
from tunewright.methods import LORA_METHODS, MERGEABLE_METHODS, METHODS, PROMPT_METHODS
from tunewright.pipeline import not_applicable


def test_families_name_known_methods_and_do_not_overlap():
    assert set(LORA_METHODS) | set(PROMPT_METHODS) | set(MERGEABLE_METHODS) <= set(METHODS)
    assert not set(PROMPT_METHODS) & set(MERGEABLE_METHODS)
    assert set(METHODS) - set(PROMPT_METHODS) - set(MERGEABLE_METHODS) == {"full"}


@pytest.mark.parametrize("method", METHODS)
def test_export_and_pipeline_agree_on_what_merges(tmp_path, method):
    config = load_config(None, [f"train.method={method}", f"runs_dir={tmp_path}"])
    skipped = not_applicable(config, "export")
    assert (skipped is None) == (method in MERGEABLE_METHODS)
    if method in PROMPT_METHODS:
        with pytest.raises(MergeUnsupportedError):
            check_mergeable(config)
    else:
        check_mergeable(config)
