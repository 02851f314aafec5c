import json
import os
import subprocess
import sys
import textwrap

import pytest
from tests.unit.data.texts import text, words

from tunewright.data.dedup import DuplicateIndex, Links, cross_duplicates, shared_ngrams


def edited(original: list[str], position: int, replacement: str = "zeppelin") -> str:
    changed = list(original)
    changed[position] = replacement
    return " ".join(changed)


def links(texts: list[str], threshold: float = 0.85) -> Links:
    return DuplicateIndex(texts).links(threshold)


def test_exact_copies_name_the_first_after_normalising_whitespace_and_unicode():
    first = text(30, 1)
    spaced = "  " + first.replace(" ", " \n\t")
    texts = [first, text(30, 2), spaced, "Cafe\u0301 au lait", "Caf\u00e9 au lait", first]
    assert links(texts).firsts == [0, 1, 0, 3, 3, 0]


def test_a_case_difference_is_a_near_copy_not_an_exact_one():
    first = text(30, 1)
    assert links([first, first.upper()]) == Links([0, 1], [(0, 1, 1.0)])


def test_empty_texts_are_nobodys_copy():
    assert links(["", " \n", text(30, 1), ""]) == Links([0, 1, 2, 3], [])


@pytest.mark.parametrize("length", [40, 60, 100])
def test_one_word_changed_mid_text_is_a_near_copy_at_the_default(length):
    # n words make n - 2 three-word shingles and one changed word alters 3 of them, so Jaccard
    # is (n - 5) / (n + 1): 0.854 at 40 words (five-word shingles gave 0.756).
    original = words(length, length)
    found = links([" ".join(original), text(40, 7), edited(original, length // 2)])
    assert found.near == [(0, 2, pytest.approx((length - 5) / (length + 1)))]


@pytest.mark.parametrize("length", [10, 30, 100, 500])
@pytest.mark.parametrize("where", [0, 0.5, 1])
def test_one_word_changed_is_a_near_copy_at_any_length(length, where):
    # Word 3-shingles give (n - 5) / (n + 1): 0.45 at 10 words, 0.81 at 30. Under 40 words the
    # word edit similarity counts too: 9/10 and 29/30.
    original = words(length, length)
    position = min(int(where * length), length - 1)
    changed = edited(original, position)
    found = links([" ".join(original), text(length, 7), changed]).near
    assert [(i, j) for i, j, _ in found] == [(0, 2)] and found[0][2] >= 0.85
    copies = cross_duplicates([text(length, 8), " ".join(original)], [changed], 0.85)
    assert copies == {0: (1, found[0][2])}
    if where == 0.5:  # an edge word touches fewer shingles, so only mid-text has one value
        similarity = (1 - 1 / length) if length < 40 else (length - 5) / (length + 1)
        # Long random texts over 48 words repeat a few shingles, so the formula is approximate.
        assert found[0][2] == pytest.approx(similarity, abs=0 if length < 40 else 0.01)


@pytest.mark.parametrize("length", [10, 30])
def test_one_word_inserted_or_deleted_in_a_short_text_is_a_near_copy(length):
    original = words(length, length)
    inserted = " ".join([*original[:4], "zeppelin", *original[4:]])
    deleted = " ".join(original[:4] + original[5:])
    found = links([" ".join(original), inserted, text(length, 3), deleted]).near
    assert found == [
        (0, 1, pytest.approx(1 - 1 / (length + 1))),
        (0, 3, pytest.approx(1 - 1 / length)),
    ]


@pytest.mark.parametrize("changed", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_few_words_changed_in_a_short_text_are_found_whatever_the_seed(changed, seed):
    """Edit similarity 1 - k/30 is over 0.85 for k <= 4, while the shingle Jaccard is far
    below it: such pairs must be candidates every time, not by the luck of MinHash."""
    original = words(30, seed + 100)
    edited_words = list(original)
    for k in range(changed):
        edited_words[3 + 7 * k] = f"zeppelin{k}"
    others = [text(30, seed * 50 + n) for n in range(40)]
    texts = [" ".join(original), *others, " ".join(edited_words)]
    found = DuplicateIndex(texts, seed).links(0.85).near
    assert (0, len(texts) - 1, pytest.approx(1 - changed / 30)) in found


def test_short_texts_one_number_apart_are_different_examples():
    texts = [f"What is {n} plus {n + 1}, and why is that so?" for n in range(30)]
    assert links(texts).near == []


def test_short_texts_two_words_apart_or_too_short_are_not_near_copies():
    original = words(10, 10)
    two = edited(original, 2).split()
    two[7] = "blimp"
    six = words(6, 6)
    assert links([" ".join(original), " ".join(two)]).near == []  # 8/10
    assert links([" ".join(six), edited(six, 3)]).near == []  # 5/6 = 0.83


def test_an_edit_at_the_end_is_a_near_copy():
    original = text(40, 2)
    found = links([original, text(40, 3), original + " indeed"])
    assert found.near == [(0, 2, pytest.approx(38 / 39))]


def test_template_siblings_are_not_near_copies():
    # Rows filled from one template differ in five tokens each: different examples (Jaccard
    # 2/28 for n = 12 and 13), however alike they look.
    texts = [
        f"Question number {n}: what is {n} plus {n}?\n"
        f"The answer to question {n} is {2 * n}, computed carefully."
        for n in range(1, 60)
    ]
    assert links(texts).near == []


def test_unrelated_texts_are_not_near_copies():
    assert links([text(40, seed) for seed in range(1, 30)], threshold=0.5).near == []


@pytest.mark.parametrize(
    ("first", "typo"),
    [("Sentiment?\nwonderful", "Sentiment?\nwonderfull"), ("Is the sky blue", "Is the sky bluee")],
)
def test_texts_under_five_words_use_character_shingles(first, typo):
    # As word 3-shingles a 4-word text has 2, and one typo leaves at most 1 of 3 shared.
    found = links([first, "Sentiment?\nterrible", typo])
    assert [(i, j) for i, j, _ in found.near] == [(0, 2)]


def test_groups_link_exact_and_near_copies():
    original = text(40, 3)
    texts = [original, text(30, 10), text(30, 11), original + " indeed", original]
    assert links(texts).groups() == [0, 1, 2, 0, 0]


def test_a_crowded_cluster_of_near_copies_is_one_group():
    # 40 copies of one text, each with a different last word, crowd the same LSH buckets: more
    # rows than the per-bucket comparison window, so linking relies on chaining through it.
    base = text(40, 4)
    texts = [f"{base} tail{n}" for n in range(40)] + [text(30, s) for s in (100, 101, 102)]
    found = links(texts)
    assert found.groups() == [0] * 40 + [40, 41, 42]
    assert sorted({j for _, j, _ in found.near}) == list(range(1, 40))


def test_links_among_some_indexed_texts_match_a_new_index():
    # `data prepare` indexes every row once, then groups the rows it kept after rejection.
    base = text(40, 5)
    texts = [f"{base} tail{n}" for n in range(20)] + [text(40, s) for s in range(30, 50)]
    texts += [texts[3], "", texts[25] + " indeed"]
    index = DuplicateIndex(texts, seed=3)
    for subset in (texts[::3], texts[::-2], texts[20:]):
        assert index.links(0.85, subset) == DuplicateIndex(subset, seed=3).links(0.85)
    assert index.links(0.85) == DuplicateIndex(texts, seed=3).links(0.85, texts)


def test_links_refuse_a_text_that_was_not_indexed():
    with pytest.raises(ValueError, match="not built from"):
        DuplicateIndex([text(30, 1)]).links(0.85, [text(30, 2)])


def test_cross_duplicates_name_the_first_train_copy():
    train = ["", text(30, 1), text(40, 2), text(30, 1)]
    evals = [" " + train[1], train[2] + " indeed", text(30, 9), "", train[2].upper()]
    assert cross_duplicates(train, evals, 0.85) == {
        0: (1, None),
        1: (2, pytest.approx(38 / 39)),
        4: (2, 1.0),
    }


def test_shared_ngrams_quote_the_first_shared_run():
    run = text(13, 50)
    train = [text(20, 1), f"{text(10, 70)} {run} {text(10, 71)}"]
    evals = [
        f"{text(15, 80)} {run.upper()}",
        text(30, 90),
        f"{text(15, 82)} {' '.join(run.split()[:12])}",  # 12 words only
    ]
    first_words = " ".join(run.split()[:8])
    assert shared_ngrams(train, evals, 13) == {0: (1, f"{first_words} ...")}
    with pytest.raises(ValueError, match="at least 1"):
        shared_ngrams(train, evals, 0)


def test_results_do_not_depend_on_pythonhashseed():
    script = textwrap.dedent(
        """
        import hashlib, json, random
        from tunewright.data.dedup import DuplicateIndex, cross_duplicates, shared_ngrams
        rng = random.Random(7)
        vocab = [f"w{i}" for i in range(60)]
        texts = [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(40)]
        texts += [texts[3], texts[5] + " extra", texts[8], "short text"]
        index = DuplicateIndex(texts)
        links = index.links(0.85)
        # The signatures themselves, not only the links they lead to, must be reproducible.
        signatures = hashlib.sha1(index.signatures.tobytes()).hexdigest()
        leaks = cross_duplicates(texts[:20], texts[20:], 0.85)
        shared = shared_ngrams(texts[:20], texts[20:], 8)
        print(json.dumps([links.firsts, links.near, links.groups(), signatures, leaks, shared]))
        """
    )
    outputs = []
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    firsts, near, groups, *_ = outputs[0]
    assert firsts[40:] == [3, 41, 8, 43]
    assert [(i, j) for i, j, _ in near] == [(5, 41)]
    assert groups[40:] == [3, 5, 8, 43]


def test_a_sketch_built_in_blocks_finds_what_one_block_finds(monkeypatch):
    from tunewright.data import dedup

    texts = [text(30 + n % 20, n % 7) for n in range(60)]  # repeats and near repeats
    texts += [edited(words(30, 1), 5), text(8, 9), edited(words(8, 9), 1)]
    whole = DuplicateIndex(texts, 3).links(0.85)
    monkeypatch.setattr(dedup, "_TEXTS_PER_SKETCH", 7)
    blocks = DuplicateIndex(texts, 3)
    assert blocks.links(0.85) == whole
    assert blocks.cross(list(range(30)), list(range(30, 63)), 0.85) == cross_duplicates(
        texts[:30], texts[30:], 0.85
    )
    assert whole.near  # the texts do hold near copies


def test_ascii_blocks_split_and_hash_words_as_the_regex_path_does():
    from tunewright.data.dedup import _Tokens, _Words

    texts = [
        "Hello, World! 42 times_two x9 -- 007",
        "",
        "  spaces   and\ttabs\nnewlines ",
        "UPPER lower MiXeD 3.14 a_b_c",
        text(50, 4),
    ]
    fast = _Words._block(texts)  # every text is ASCII: the byte path
    slow = _Tokens.of(texts)
    assert fast.lengths.tolist() == slow.lengths.tolist() == [6, 0, 4, 6, 50]
    assert fast.hashes.tolist() == slow.hashes().tolist()
    assert fast.numbers.tolist() == slow.numbers().tolist()
    assert fast.numbers.sum() == 4  # 42, 007, 3 and 14; x9 is not one
    # A block with one non-ASCII text goes through the regex, with the same hashes.
    mixed = _Words._block([*texts, "café au lait"])
    assert mixed.hashes[: len(fast.hashes)].tolist() == fast.hashes.tolist()
