"""What the export stage can check before any work: a hub push has its token."""

from __future__ import annotations

import os

from tunewright.config import Config
from tunewright.exporting.hub import TOKEN_ENV


def preflight(config: Config) -> list[str]:
    if config.export.push_to_hub and not os.environ.get(TOKEN_ENV):
        return [
            f"export.push_to_hub: pushing to {config.export.push_to_hub} needs a token in "
            f"${TOKEN_ENV}, which is not set"
        ]
    return []
