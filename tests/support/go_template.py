"""Renders Ollama Modelfile templates with Go's own text/template (gotemplate/main.go).

Go comes from Debian's golang-go, which `make test` installs. Without it the tests that need it
fail with this module's message rather than skip: the Ollama templates would go unchecked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("gotemplate") / "main.go"
INSTALL = "apt-get install -y golang-go (or run `make test`, which installs it)"


def build_renderer(folder: Path) -> Path:
    """Compile the renderer once; returns the binary."""
    go = shutil.which("go")
    if go is None:
        raise AssertionError(
            f"Go is needed to check the Ollama templates and is not installed: {INSTALL}"
        )
    binary = folder / "gotemplate"
    subprocess.run(
        [go, "build", "-o", str(binary), str(SOURCE)],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "GO111MODULE": "off"},  # one file, no module
    )
    return binary


def render(binary: Path, template: str, conversations: list[list[dict[str, str]]]) -> list[str]:
    """Each conversation rendered by `template`, with Ollama's data shape (.Messages, .System)."""
    cases = [
        {
            "messages": conversation,
            "system": "\n\n".join(m["content"] for m in conversation if m["role"] == "system"),
        }
        for conversation in conversations
    ]
    done = subprocess.run(
        [str(binary)],
        input=json.dumps({"template": template, "cases": cases}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"Go template failed: {done.stderr}"
    rendered: list[str] = json.loads(done.stdout)
    return rendered
