"""The OpenAI client: the API key from the environment, the base URL, and API errors turned
into messages the user can act on.

The key is read from the environment variable named by `openai.api_key_env` at the moment the
client is made. It is never printed, logged or saved: error messages are scrubbed of it before
they are shown, and the config holds only the variable's name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tunewright.config.openai_section import OpenAISection
from tunewright.errors import TunewrightError

OPENAI_URL = "https://api.openai.com/v1"


class OpenAIAPIError(TunewrightError):
    """OpenAI (or a compatible service) refused a request or could not be reached."""


def api_key(settings: OpenAISection) -> str:
    """The API key, or a TunewrightError naming the variable to set."""
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise TunewrightError(
            f"no OpenAI API key: {settings.api_key_env} is not set",
            hint=f"export {settings.api_key_env}=sk-... (read from the environment only, never "
            "saved; set openai.api_key_env to use another variable)",
        )
    return key


def base_url(settings: OpenAISection) -> str | None:
    """`openai.base_url`, else OPENAI_BASE_URL, else None (OpenAI itself)."""
    return settings.base_url or os.environ.get("OPENAI_BASE_URL") or None


def make_client(settings: OpenAISection) -> Any:
    """An `openai.OpenAI` client; fails before any work when the key or the SDK is missing."""
    key = api_key(settings)
    try:
        import openai
    except ImportError:
        raise TunewrightError(
            "the OpenAI backend needs the openai package",
            hint="pip install 'tunewright[openai]'",
        ) from None
    return openai.OpenAI(api_key=key, base_url=base_url(settings))


def scrub(text: str, settings: OpenAISection) -> str:
    """`text` with the API key replaced, in case a server echoes it back."""
    key = os.environ.get(settings.api_key_env, "").strip()
    return text.replace(key, "<redacted>") if key else text


@contextlib.contextmanager
def api_errors(settings: OpenAISection) -> Iterator[None]:
    """Turn the SDK's errors into OpenAIAPIError with a hint; other exceptions pass through."""
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        raise _status_error(exc, settings) from None
    except openai.APIConnectionError as exc:
        where = base_url(settings) or OPENAI_URL
        raise OpenAIAPIError(
            scrub(f"cannot reach {where}: {exc.message}", settings),
            hint="Check the network, openai.base_url and OPENAI_BASE_URL.",
        ) from None


def _status_error(exc: Any, settings: OpenAISection) -> OpenAIAPIError:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = str(body.get("message") or exc.message)
    extra = [f"{k} {body[k]}" for k in ("code", "param") if body.get(k)]
    text = f"OpenAI error {exc.status_code}: {message}" + (
        f" ({', '.join(extra)})" if extra else ""
    )
    hints = {
        401: f"Check the key in {settings.api_key_env} (and openai.base_url for other services).",
        403: "The key's project may lack access to fine-tuning or to this model.",
        404: "Check the job or file id; `tunewright openai list CONFIG` shows recent jobs.",
        429: "Rate limit or quota reached: wait, or check the account's billing.",
    }
    return OpenAIAPIError(scrub(text, settings), hint=hints.get(exc.status_code))
