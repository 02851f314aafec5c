"""Random malformed files never crash the data stage: only clear errors, and counts add up."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunewright.config import load_config
from tunewright.data.prepare import analyze
from tunewright.errors import TunewrightError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
keys = st.sampled_from(
    [
        "messages",
        "conversations",
        "instruction",
        "output",
        "input",
        "text",
        "label",
        "prompt",
        "completion",
        "chosen",
        "rejected",
        "role",
        "content",
        "from",
        "value",
        "history",
        "tools",
    ]
)
rows = st.dictionaries(
    keys,
    json_values | st.lists(st.dictionaries(keys, json_values, max_size=3), max_size=4),
    max_size=4,
)
lines = st.one_of(
    rows.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.lists(lines, min_size=1, max_size=12),
    suffix=st.sampled_from([".jsonl", ".json", ".csv"]),
)
def test_malformed_files_give_clear_errors_only(tmp_path_factory, tiny_model_dir, body, suffix):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"data{suffix}"
    path.write_bytes(b"\n".join(body))
    config = load_config(None, [f"model.name={tiny_model_dir}", f"runs_dir={folder}"])
    config.data.train = [str(path)]
    try:
        analysis = analyze(config)
    except TunewrightError as exc:
        assert str(exc)  # a user-facing message, e.g. a JSON array syntax error with its line
        return
    rows_ = analysis.report["rows"]
    assert rows_["train"] + rows_["eval"] + rows_["rejected"] == rows_["total"]
    for entry in analysis.rejected:
        assert entry["source"].startswith(str(path)) and entry["reason"]
