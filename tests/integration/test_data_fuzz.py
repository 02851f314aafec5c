"""Malformed inputs of every format never crash the data stage: only clear errors naming the file,
and every row read ends in train, eval or rejected.jsonl with its file:line.

The generators and the check live in tests/support/fuzz_data.py; bench/fuzz_data.py runs the same
cases by the thousand. Here a fixed, bounded sample per format (a fixed seed per format, no
example database) keeps CI deterministic and the whole file under a minute.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, seed, settings
from tests.support.fuzz_data import CASES, FORMATS, Case, check_case

from tunewright.models import load_tokenizer

EXAMPLES = 60  # per format: about 30 s of CPU for the whole file


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_inputs_give_clear_errors_only(fmt, tmp_path_factory, tiny_model_dir, tokenizer):
    outcomes: Counter[str] = Counter()

    @seed(FORMATS.index(fmt))  # CSV and TSV would otherwise draw the same cases
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(case=CASES[fmt])
    def check(case: Case) -> None:
        folder = tmp_path_factory.mktemp(f"fuzz-{fmt}")
        try:
            outcome = check_case(case, folder, tiny_model_dir, tokenizer)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        assert outcome.problem is None, outcome.problem
        outcomes[outcome.result] += 1

    check()
    # The sample reaches past the loader: some inputs are read, checked and gated or written.
    assert outcomes["prepared"] + outcomes["gated"] > 0, outcomes
