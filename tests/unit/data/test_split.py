import json
import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewright.data.records import make_record
from tunewright.data.split import split_records


def records(count: int, labels: list[str] | None = None) -> list[dict]:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    return [
        make_record(
            messages,
            "classification" if labels else "instruction",
            "f.jsonl",
            n + 1,
            label=labels[n] if labels else None,
        )
        for n in range(count)
    ]


def test_same_seed_same_split_and_other_seed_another():
    data = records(100)
    first = split_records(data, 0.1, seed=3)
    assert split_records(data, 0.1, seed=3) == first
    assert split_records(data, 0.1, seed=4) != first
    train, evaluation = first
    assert len(evaluation) == 10
    assert sorted(train + evaluation) == list(range(100))


def test_split_does_not_depend_on_pythonhashseed():
    script = textwrap.dedent(
        """
        import json
        from tunewright.data.records import make_record
        from tunewright.data.split import split_records
        labels = ["spam", "ham", "eggs"] * 20
        data = [make_record([], "classification", "f", n, label=l) for n, l in enumerate(labels)]
        print(json.dumps(split_records(data, 0.25, 9, groups=[n // 2 for n in range(60)])))
        """
    )
    outputs = []
    for hash_seed in ("1", "999"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    assert len(outputs[0][1]) in (14, 16)  # 15 wanted, but groups are pairs


@pytest.mark.parametrize(("count", "fraction"), [(2, 0.1), (3, 0.01), (5, 0.05)])
def test_small_sets_get_one_eval_example(count, fraction):
    train, evaluation = split_records(records(count), fraction, seed=0)
    assert len(evaluation) == 1
    assert len(train) == count - 1


def test_fewer_than_two_records_have_no_eval():
    assert split_records(records(1), 0.5, seed=0) == ([0], [])
    assert split_records([], 0.5, seed=0) == ([], [])


def test_groups_stay_whole():
    # Group sizes 1..4 repeating: 40 groups, 100 records.
    groups = [g for g in range(40) for _ in range(g % 4 + 1)]
    train, evaluation = split_records(records(len(groups)), 0.2, seed=1, groups=groups)
    train_groups = {groups[i] for i in train}
    eval_groups = {groups[i] for i in evaluation}
    assert not train_groups & eval_groups
    assert abs(len(evaluation) - 20) <= 3  # within the largest group, less one


def test_a_single_group_of_everything_is_not_split():
    assert split_records(records(5), 0.2, seed=0, groups=[7] * 5) == ([0, 1, 2, 3, 4], [])


def test_oversized_groups_still_leave_train_and_eval():
    train, evaluation = split_records(records(6), 0.1, seed=0, groups=[0, 0, 0, 1, 1, 1])
    assert sorted(map(len, (train, evaluation))) == [3, 3]


def test_labels_keep_their_share_in_eval():
    labels = ["pos"] * 700 + ["neg"] * 200 + ["neu"] * 100
    train, evaluation = split_records(records(1000, labels), 0.2, seed=5)
    assert Counter(labels[i] for i in evaluation) == {"pos": 140, "neg": 40, "neu": 20}
    assert len(train) == 800


def test_rounding_across_labels_still_gives_the_total():
    labels = ["a"] * 7 + ["b"] * 7 + ["c"] * 7
    _, evaluation = split_records(records(21, labels), 0.1, seed=0)
    assert len(evaluation) == 2  # round(2.1); each label's exact share is 0.7
    assert len({labels[i] for i in evaluation}) == 2


def test_stratify_false_ignores_labels():
    labels = ["rare"] * 2 + ["common"] * 98
    data = records(100, labels)
    stratified = [split_records(data, 0.5, seed=s)[1] for s in range(20)]
    assert all(sum(labels[i] == "rare" for i in e) == 1 for e in stratified)
    plain = [split_records(data, 0.5, seed=s, stratify=False)[1] for s in range(20)]
    assert any(sum(labels[i] == "rare" for i in e) != 1 for e in plain)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 60).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.integers(0, 8), min_size=n, max_size=n),
            st.one_of(st.none(), st.lists(st.sampled_from("xyz"), min_size=n, max_size=n)),
        )
    ),
    st.floats(0.01, 0.99),
    st.integers(0, 2**32 - 1),
)
def test_split_is_a_partition_that_keeps_groups_whole(case, fraction, seed):
    n, groups, labels = case
    train, evaluation = split_records(records(n, labels), fraction, seed, groups=groups)
    assert sorted(train + evaluation) == list(range(n))
    assert train == sorted(train) and evaluation == sorted(evaluation)
    assert not {groups[i] for i in train} & {groups[i] for i in evaluation}
    if len(set(groups)) >= 2:
        assert evaluation and train
