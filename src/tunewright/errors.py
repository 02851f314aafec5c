"""User-facing errors: problems the user can fix, shown without a traceback.

Anything that is not a `TunewrightError` is a bug and is allowed to crash loudly.
"""

from __future__ import annotations


class TunewrightError(Exception):
    """A problem the user can fix. `hint` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(TunewrightError):
    """The config file is unreadable or invalid; `problems` lists every problem found."""

    def __init__(self, source: str, problems: list[str], hint: str | None = None) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {count} {noun}\n{lines}", hint)
        self.source = source
        self.problems = problems


class ModelNotFoundError(TunewrightError):
    """The model name is neither embedded, a local folder, nor reachable on the hub."""


class InputFileError(TunewrightError):
    """An input file is missing or unreadable."""


class DiskFullError(TunewrightError):
    """Writing an output failed for want of room: the disk is full, or a quota or the file-size
    limit (`ulimit -f`) was reached. Raised by the writers in `files.py`, naming the target."""
