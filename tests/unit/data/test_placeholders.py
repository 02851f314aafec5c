"""Issue 15, item 4: unfilled template placeholders in answers are warned about, with file:line,
the placeholder, and a count of records per distinct placeholder."""

from __future__ import annotations

import pytest

from tunewright.data.checks import REJECTING, check_records
from tunewright.data.placeholders import count_placeholders, find_placeholders
from tunewright.data.records import make_record

QUESTION = "Please write a short reply to the customer about their delayed order."


def record(answer: str, line: int, task: str = "chat") -> dict:
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}]
    return make_record(messages, task=task, file="f.jsonl", line=line)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dear {{customer_name}}, your order ships soon.", ["{{customer_name}}"]),
        ("Dear {{ name }}, thanks.", ["{{ name }}"]),
        ("Hello {first_name}, your order {order_id} is late.", ["{first_name}", "{order_id}"]),
        ("Regards, <YOUR NAME> from <COMPANY>.", ["<YOUR NAME>", "<COMPANY>"]),
        ("It arrives on [INSERT DATE] at [Your address].", ["[INSERT DATE]", "[Your address]"]),
        ("TODO: write the refund policy here.", ["TODO"]),
        ("Lorem ipsum dolor sit amet, consectetur.", ["Lorem ipsum"]),
        ("{{a}} then {{a}} again", ["{{a}}"]),  # distinct, first appearance
    ],
)
def test_each_placeholder_kind_is_found(text, expected):
    assert find_placeholders(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Use `print(f'{name}')` to greet them.",
        "Like this:\n```python\ngreeting = f'Hello {name}'  # TODO: translate\n```\nDone.",
        r"The ratio is $\frac{a}{b}$ and \text{name} stays as written.",
        'The JSON is {"name": "Ada"} and the set {1, 2} has two items.',
        "Use <div> or <T> in HTML and generics; todo lists help; the ${HOME} variable.",
        "A sentence with no gaps at all, as most answers are.",
    ],
)
def test_code_latex_and_ordinary_text_are_not_placeholders(text):
    assert find_placeholders(text) == []


def test_placeholders_warn_with_location_and_are_counted_per_placeholder():
    records = [
        record("Dear {{name}}, your order ships on [INSERT DATE]. Sorry for the wait!", 1),
        record("Your order is on its way and should arrive within three days.", 2),
        record("Dear {{name}}, we refunded you. TODO add the amount and the date.", 3),
        record("Dear {{name}}, a new one is on its way to you by courier.", 4),
    ]
    found = [f for f in check_records(records) if f.check == "placeholder"]
    assert [f.location for f in found] == ["f.jsonl:1", "f.jsonl:3", "f.jsonl:4"]
    assert found[0].detail == (
        'answer holds unfilled template placeholders "{{name}}", "[INSERT DATE]"'
    )
    assert count_placeholders(f.values for f in found) == {
        "{{name}}": 3,
        "TODO": 1,
        "[INSERT DATE]": 1,
    }
    assert "placeholder" not in REJECTING  # a warning: the record is still trained on


def test_prompts_and_code_answers_are_not_read():
    in_prompt = make_record(
        [
            {"role": "user", "content": "Fill in {{name}} in: Dear {{name}}, hello."},
            {"role": "assistant", "content": "Dear Ada, hello and welcome aboard."},
        ],
        task="chat",
        file="f.jsonl",
        line=1,
    )
    code = record("def greet(name):\n    return f'Hello {name}'  # TODO: i18n\n", 2, "code")
    assert [f for f in check_records([in_prompt, code]) if f.check == "placeholder"] == []


def test_many_placeholders_in_one_answer_stay_one_line():
    answer = "Hi {{a}} {{b}} {{c}} {{d}} {{e}}, welcome to the team."
    [finding] = [f for f in check_records([record(answer, 7)]) if f.check == "placeholder"]
    assert finding.detail.endswith('"{{a}}", "{{b}}", "{{c}}" and 2 more')
    assert finding.values == ("{{a}}", "{{b}}", "{{c}}", "{{d}}", "{{e}}")
