"""The data stage's promise that every input row ends in exactly one place, checked in code.

A broken promise is a bug in tunewright, not in the data: it raises `RowsLostError`, which is
no `TunewrightError`, so it crashes with a traceback. It is a real check rather than an `assert`,
which `python -O` would remove, and the message gives the numbers needed to report it.
"""

from __future__ import annotations


class RowsLostError(RuntimeError):
    """Internal error: the rows written or rejected do not add up to the rows read."""


def check_rows_add_up(
    *, read: int, train: int, eval: int, rejected: int, left_out: int = 0
) -> None:
    """Raise RowsLostError unless train + eval + rejected + left_out == read (all counts of
    distinct input rows; left_out: checked rows that mixing did not use)."""
    placed = train + eval + rejected + left_out
    if placed == read:
        return
    what = "lost" if placed < read else "counted twice"
    raise RowsLostError(
        f"internal error in the data stage: {abs(read - placed)} rows {what}: read {read} "
        f"input rows, but train {train} + eval {eval} + rejected {rejected} + left out by "
        f"mixing {left_out} = {placed}. "
        "Nothing was written. This is a bug in tunewright; please report it with this message."
    )
