"""The consoles every command prints to and the CLI argument types they share.

Not a terminal (pipes, CI logs): print wide instead of wrapping tables at 80 columns.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)
# Global options set by the root callback, read by commands that start other processes.
state = {"verbose": False}

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides such as train.lora.r=8 (value parsed as YAML).", show_default=False
    ),
]


def yes(flag: bool) -> str:
    """A yes/no cell for tables."""
    return "[green]yes[/green]" if flag else "[yellow]no[/yellow]"
