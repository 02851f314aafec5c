"""Stream pieces join to the final text and never show a stop string, even split over tokens."""

from __future__ import annotations

import pytest

from tunewright.serving.rows import TextPieces, first_stop


def _stream(steps: list[str], stops: tuple[str, ...], final: str) -> list[str]:
    pieces: list[str] = []
    stream = TextPieces(pieces.append, stops)
    for text in steps:
        stream.update(text, final=False)
    stream.update(final, final=True)
    return pieces


def test_a_stop_string_split_over_steps_is_held_back_then_dropped() -> None:
    # "END" arrives over three steps; the reply is cut before it.
    steps = ["Hello", "Hello E", "Hello EN", "Hello END"]
    cut = first_stop(steps[-1], ("END",))
    pieces = _stream(steps, ("END",), steps[-1][:cut])
    assert "".join(pieces) == "Hello"
    assert not any("E" in piece for piece in pieces)


def test_a_near_miss_is_released_once_it_cannot_be_a_stop() -> None:
    pieces = _stream(["ab", "abE", "abEx"], ("END",), "abEx y")
    assert "".join(pieces) == "abEx y"
    assert pieces[0] == "ab"  # "E" waited until "x" showed it was no stop


def test_whitespace_at_the_ends_and_broken_characters_wait() -> None:
    pieces = _stream(["\n", "\n hi", "\n hi \ufffd", "\n hi é"], (), "\n hi é \n")
    assert "".join(pieces) == "hi é"


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [("a.b;c", (";", "."), 1), ("abc", ("x",), None), ("abc", (), None)],
)
def test_first_stop_is_the_earliest(
    text: str, stops: tuple[str, ...], expected: int | None
) -> None:
    assert first_stop(text, stops) == expected
