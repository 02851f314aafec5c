import numpy as np
from tests.unit.data.texts import text

from tunewright.data.boilerplate import AnswerNgrams, boilerplate_rows, group_cap
from tunewright.data.dedup import shared_ngrams

SORRY = "I'm sorry, but I don't have the capability to browse the internet or check live prices"


def test_the_boilerplate_rule_is_1_percent_of_answers_between_5_and_20():
    assert [boilerplate_rows(n) for n in (10, 500, 501, 1500, 1_000_000)] == [5, 5, 6, 15, 20]
    assert [group_cap(n) for n in (10, 2000, 2001, 100_000)] == [20, 20, 21, 1000]


def test_a_run_in_many_answers_is_boilerplate_with_its_phrase_count_and_rows():
    answers = [text(20, seed) for seed in range(100)]
    for i in range(3, 100, 10):  # 10 answers share the apology, after their own words
        answers[i] = f"{answers[i]} {SORRY}"
    found = AnswerNgrams.of(answers, 13)
    # 18 words ("i'm" is two) make six 13-word runs; they merge into one phrase.
    assert found.count == 6
    [phrase] = found.phrases
    assert phrase.text == "i m sorry but i don t have the capability to browse ..."
    assert (phrase.rows, phrase.examples) == (10, [3, 13, 23])
    assert found.links == []  # boilerplate links nobody


def test_boilerplate_is_no_leak_but_a_rarer_shared_run_still_is():
    train = [text(20, seed) for seed in range(40)]
    for i in range(0, 40, 5):
        train[i] += " " + SORRY
    rare = text(14, 999)
    train[7] += " " + rare
    evals = [f"{text(20, 500)} {SORRY}", f"{text(20, 501)} {rare}"]
    found = AnswerNgrams.of(train + evals, 13)
    assert shared_ngrams(train, evals, 13).keys() == {0, 1}  # without the rule both leak
    assert shared_ngrams(train, evals, 13, found.hashes).keys() == {1}
    assert shared_ngrams(train, evals, 13, found.hashes)[1][0] == 7


def test_answers_sharing_a_rarer_run_are_grouped_and_groups_stop_at_the_cap():
    answers = [text(20, seed) for seed in range(60)]
    answers[5] += " " + text(13, 1000)
    answers[40] += " " + text(13, 1000)
    # A chain: answer 10 + k shares one run with answer 11 + k, for 30 answers.
    for k in range(10, 39):
        run = text(13, 2000 + k)
        answers[k] += " " + run
        answers[k + 1] = run + " " + answers[k + 1]
    found = AnswerNgrams.of(answers, 13)
    assert (5, 40) in found.links
    groups, stats = found.groups(list(range(60)), cap=20)
    assert groups[40] == groups[5] == 5
    assert groups[10:30] == [10] * 20 and groups[30] != 10
    assert stats == {"cap": 20, "grouped_rows": 2 + 30, "largest": 20, "links_over_cap": 1}


def test_groups_join_the_duplicate_groups_given_and_count_them_against_the_cap():
    answers = [text(20, seed) for seed in range(10)]
    answers[0] += " " + text(13, 77)
    answers[9] += " " + text(13, 77)
    base = [0, 1, 1, 1, 4, 5, 6, 7, 8, 9]  # 1-3 are near-duplicates
    groups, stats = AnswerNgrams.of(answers, 13).groups(base, cap=20)
    assert groups == [0, 1, 1, 1, 4, 5, 6, 7, 8, 0]
    assert stats["grouped_rows"] == 5
    assert np.array_equal(AnswerNgrams.of([], 13).hashes, np.zeros(0, np.uint64))


def test_a_run_overlapping_boilerplate_links_nobody_and_is_no_leak():
    # Answers 0 and 1 continue the apology with the same two words: a 13-word run they alone
    # share, but mostly boilerplate.
    answers = [f"{SORRY} {text(10, seed)}" for seed in range(8)]
    answers[1] = f"{SORRY} {text(10, 0)[:11]} {text(10, 1)}"
    answers[0] = f"{SORRY} {text(10, 0)}"
    found = AnswerNgrams.of(answers, 13)
    assert found.count == 6 and found.links == []
    assert shared_ngrams(answers[:1], answers[1:2], 13, found.hashes) == {}
    assert shared_ngrams(answers[:1], answers[1:2], 13).keys() == {0}


def test_answers_read_in_blocks_give_what_one_block_gives(monkeypatch):
    from tunewright.data import boilerplate

    answers = [text(20, seed) for seed in range(100)]
    for i in range(3, 100, 10):
        answers[i] = f"{answers[i]} {SORRY}"
    answers[50] += " " + text(14, 999)
    answers[71] += " " + text(14, 999)  # a rarer shared run: a link
    whole = AnswerNgrams.of(answers, 13)
    monkeypatch.setattr(boilerplate, "_ANSWERS_PER_PASS", 7)
    blocks = AnswerNgrams.of(answers, 13)
    assert blocks.phrases == whole.phrases and blocks.phrases[0].rows == 10
    assert np.array_equal(blocks.hashes, whole.hashes)
    assert blocks.links == whole.links == [(50, 71)]
    sides = np.array([1] * 60 + [0] * 40)  # 71 is on the eval side, 50 on train
    assert blocks.leaking(sides).tolist() == whole.leaking(sides).tolist() == [71]
