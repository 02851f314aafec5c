"""Issue 15, items 1, 2 and 4 through `data validate` on a bare file: content parts in other
trainers' shapes are read, an unreadable part is rejected naming its field, unfilled
placeholders are warned about with their lines and a count per placeholder, and boilerplate
shared by most answers makes no leak in the split validate chooses."""

from __future__ import annotations

import json


def chat(i: int, answer: list[dict] | str, key: str = "text") -> dict:
    question = f"Customer {i} asks: where is my order number {1000 + i}, please?"
    return {
        "messages": [
            {"role": "user", "content": [{"type": "text", key: question}]},
            {"role": "assistant", "content": answer, "loss_weight": 1},
        ]
    }


GREETING = "Thank you for contacting us, I am happy to help you with your order today."


def test_validate_reads_part_shapes_and_warns_about_placeholders(tmp_path, run_cli, tiny_model_dir):
    """The issue's combined case: other trainers' part shapes, placeholders and a boilerplate
    greeting in every answer, in one bare file that validate splits itself: right reasons, the
    placeholder warning, and no leakage failure from the split it chose."""
    rows = []
    for i in range(60):
        key = ("text", "value", "content")[i % 3]
        answer = f"Order {1000 + i} left our warehouse {i % 5 + 1} days ago and is on its way."
        rows.append(chat(i, [{"type": "text", key: GREETING}, {"type": "text", key: answer}], key))
    rows[4] = chat(4, "Dear {{name}}, your order ships on [INSERT DATE], sorry for the wait.")
    rows[9] = chat(9, "Dear {{name}}, your order was refunded in full to your card today.")
    rows[14] = chat(14, [{"type": "text", "body": "This part keeps its text under body."}])
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    code, out, err = run_cli(
        "data", "validate", str(path), f"model.name={tiny_model_dir}", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    checks = report["checks"]
    # Only the part with no text field is rejected, and its reason names the field.
    assert report["rows"]["rejected"] == 1
    assert checks["bad_row"]["examples"] == [f"{path}:15"]
    [reason] = checks["bad_row"]["reasons"]
    assert "messages[1].content[0] has no text field (keys: type, body)" in reason
    assert checks["empty_output"]["count"] == checks["bad_conversation"]["count"] == 0
    placeholder = checks["placeholder"]
    assert placeholder["severity"] == "warning"
    assert placeholder["examples"] == [f"{path}:5", f"{path}:10"]
    assert placeholder["placeholders"] == {"{{name}}": 2, "[INSERT DATE]": 1}
    # The greeting (14 words, in 57 answers) is boilerplate: no leak, and eval was split off.
    assert report["boilerplate"]["count"] >= 1
    assert report["boilerplate"]["phrases"][0]["text"].startswith("thank you for contacting us")
    assert report["leaks"]["count"] == 0 and report["rows"]["eval"] >= 5
    assert all(gate["passed"] for gate in report["gates"])


def test_terminal_report_counts_each_placeholder(tmp_path, run_cli, tiny_model_dir):
    rows = [
        chat(i, f"Hello <CUSTOMER NAME>, order {1000 + i} is on its way to you today.")
        for i in range(3)
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run_cli("data", "validate", str(path), f"model.name={tiny_model_dir}")
    assert code == 0, err
    assert "placeholders: <CUSTOMER NAME> x3" in out
