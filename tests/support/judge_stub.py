"""A deterministic, rule-based judge behind the OpenAI chat-completions wire protocol, for tests.

Rules, applied to the judge prompt that tunewright sends: the answer that contains the reference
answer wins ("Verdict: A" or "Verdict: B"); both or neither is a tie. A request whose text holds
BIASED is answered "Verdict: A" whatever the answers (a judge with position bias), and one
holding GARBLE gets a reply with no verdict line. Requests need `Authorization: Bearer <key>`.

Not product code: tests only.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SECTION = re.compile(
    r"\[(Request|Reference answer|Answer A|Answer B|Rubric)\]\n(.*?)(?=\n\n\[|\Z)", re.S
)


def judge_app(api_key: str) -> tuple[FastAPI, list[dict[str, Any]]]:
    """The app and the list of request bodies it has received, in order."""
    app = FastAPI()
    received: list[dict[str, Any]] = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            error = {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return JSONResponse({"error": error}, status_code=401)
        body = await request.json()
        received.append(body)
        text = body["messages"][-1]["content"]
        reply = _judge(text)
        usage = {"prompt_tokens": len(text) // 4, "completion_tokens": 8}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(received)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    return app, received


def _judge(text: str) -> str:
    if "BIASED" in text:
        return "Both look fine to me.\nVerdict: A"
    if "GARBLE" in text:
        return "I cannot decide."
    parts = dict(SECTION.findall(text))
    reference = parts.get("Reference answer", "").strip()
    a = reference in parts["Answer A"]
    b = reference in parts["Answer B"]
    verdict = "A" if a and not b else "B" if b and not a else "tie"
    return f"A contains the reference: {a}; B: {b}.\nVerdict: {verdict}"
