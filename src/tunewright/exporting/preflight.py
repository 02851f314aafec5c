"""What the export stage can check before any work: a hub push has its token, a K-quant
GGUF has llama.cpp's quantiser."""

from __future__ import annotations

import os

from tunewright.config import Config
from tunewright.exporting.hub import TOKEN_ENV


def preflight(config: Config) -> list[str]:
    problems = []
    if config.export.push_to_hub and not os.environ.get(TOKEN_ENV):
        problems.append(
            f"export.push_to_hub: pushing to {config.export.push_to_hub} needs a token in "
            f"${TOKEN_ENV}, which is not set"
        )
    if config.export.format != "safetensors":
        from tunewright.exporting.gguf_file import GgufUnsupportedError, check_quant

        try:
            check_quant(config.export.quant)
        except GgufUnsupportedError as exc:
            problems.append(f"export.quant: {exc.message}; {exc.hint}")
    return problems
