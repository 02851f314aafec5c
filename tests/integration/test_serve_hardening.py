"""`tunewright serve` under abuse: client mistakes are 4xx (never 5xx), nothing is echoed, the
queue is bounded (429), requests wait at most serve.request_timeout_s (503), both with
Retry-After, and a client that leaves stops its generation, streaming or not.

A real server on 127.0.0.1 over the tiny random Llama, driven with httpx and the official
openai client. The generation worker is held inside a forward pass (a hook on lm_head) to fill
the queue deterministically instead of racing it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("llguidance")
openai = pytest.importorskip("openai")

import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tests.support.serving import ServerThread  # noqa: E402

from tunewright.config import ServeSection  # noqa: E402
from tunewright.serving.app import build_app  # noqa: E402
from tunewright.serving.pool import ModelPool, load_pool  # noqa: E402
from tunewright.serving.stage import serve_settings, target_from_args  # noqa: E402

API_KEY = "sk-hardening-7d1f"
METRICS_KEY = "mk-scraper-22a9"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class Server:
    def __init__(self, url: str, pool: ModelPool, log: Path, model: str) -> None:
        self.url, self.pool, self.log, self.model = url, pool, log, model
        self.auth = {"Authorization": f"Bearer {API_KEY}"}

    def client(self) -> Any:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=API_KEY, max_retries=0)

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.auth, **kwargs)

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text() if self.log.is_file() else ""
        return [json.loads(line) for line in text.splitlines()]

    def queue_depth(self) -> float:
        scraper = {"Authorization": f"Bearer {METRICS_KEY}"}
        text = httpx.get(f"{self.url}/metrics", headers=scraper).text
        line = next(x for x in text.splitlines() if x.startswith("tunewright_queue_depth "))
        return float(line.split()[1])


@contextlib.contextmanager
def _server(tiny_model_dir: Path, log: Path, **section: Any) -> Iterator[Server]:
    pool = load_pool(target_from_args(str(tiny_model_dir)))
    settings = serve_settings(ServeSection(api_keys=[API_KEY], **section))
    with ServerThread(build_app(pool, settings, log)) as thread:
        yield Server(thread.url, pool, log, tiny_model_dir.name)


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("hardening") / "requests.jsonl"
    section = {
        "max_tokens": 8,
        "max_prompt_tokens": 256,
        "max_queue": 2,
        "batch_size": 1,
        "request_timeout_s": 1.5,
        "max_messages": 8,
        "max_choices": 4,
        "metrics_key": METRICS_KEY,
    }
    with _server(tiny_model_dir, log, **section) as started:
        yield started


def _lm_head(server: Server) -> Any:
    return next(m for name, m in server.pool.model.named_modules() if name.endswith("lm_head"))


@contextlib.contextmanager
def _held_worker(server: Server) -> Iterator[threading.Event]:
    """Stops the worker inside its next forward pass until the block ends; yields an event set
    once it is held."""
    held, release = threading.Event(), threading.Event()

    def hold(*args: Any) -> None:
        held.set()
        release.wait()

    hook = _lm_head(server).register_forward_pre_hook(hold)
    try:
        yield held
    finally:
        release.set()
        hook.remove()


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60  # turns a hang into a failure; not a speed check
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:  # kept for the assertions
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


# --- item 3: no 500 for client mistakes --------------------------------------------------------

# Mostly well-formed bodies with at most one field replaced by arbitrary JSON: a body broken
# everywhere stops at the first check, and the fuzz must reach generation to find anything.
_surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
_text = st.text(max_size=12)


def _sometimes(rare: Any, usual: Any) -> Any:
    """`rare` in about one draw of eight (hypothesis picks `a | b` about evenly)."""
    return st.integers(0, 7).flatmap(lambda k: rare if k == 0 else usual)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text | _surrogates,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_schema = st.sampled_from(
    [
        {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]},
        {"type": "object"},
        {"type": "string", "maxLength": 3},
        {"enum": ["x", "y"]},
        {"type": "nonsense"},
        {"$ref": "#/nowhere"},
    ]
)
_message_text = _sometimes(_surrogates, _text)
_content = _message_text | st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": _message_text})
)
_tool_call = st.fixed_dictionaries(
    {
        "id": st.just("call_1"),
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": st.just("f"), "arguments": _text}),
    }
)
_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
        "content": _content,
    },
    optional={"tool_calls": st.lists(_tool_call, max_size=2)},
)
_tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["f", "get_x"])}, optional={"parameters": _schema}
        ),
    }
)
_shared = {
    "max_tokens": st.integers(1, 12),
    "temperature": st.sampled_from([0.7, 0.0, 1.0, 2.0]),
    "top_p": st.floats(0.01, 1.0),
    "seed": _sometimes(st.sampled_from([-(2**63) - 1, 2**63, 2**64, 10**30]), st.integers()),
    "n": st.integers(1, 5),
    "stop": _text | st.lists(_text, max_size=5),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "user": _text,
}
_chat = st.fixed_dictionaries(
    {"model": st.just("MODEL"), "messages": st.lists(_message, min_size=1, max_size=3)},
    optional={
        **_shared,
        "max_completion_tokens": st.integers(1, 12),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 21),
        "response_format": st.sampled_from([{"type": "json_object"}, {"type": "text"}])
        | _schema.map(lambda s: {"type": "json_schema", "json_schema": {"name": "s", "schema": s}}),
        "tools": st.lists(_tool, max_size=2),
        "tool_choice": st.sampled_from(
            ["none", "auto", "required", {"type": "function", "function": {"name": "f"}}]
        ),
    },
)
_completion = st.fixed_dictionaries(
    {"model": st.just("MODEL"), "prompt": _text | st.lists(_text, min_size=1, max_size=3)},
    optional={**_shared, "logprobs": st.integers(0, 6)},
)


@st.composite
def _bodies(draw: Any) -> tuple[str, dict[str, Any]]:
    path, body = draw(
        st.tuples(st.just("/v1/chat/completions"), _chat)
        | st.tuples(st.just("/v1/completions"), _completion)
    )
    for key in draw(st.lists(st.sampled_from([*body, "unknown"]), max_size=1)):
        body[key] = draw(_json)
    return path, body


def test_generated_bodies_never_get_a_5xx(server: Server) -> None:
    statuses: list[int] = []

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        derandomize=True,  # the same bodies in every run: CI stays deterministic
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(path_and_body=_bodies())
    def check(path_and_body: tuple[str, dict[str, Any]]) -> None:
        path, body = path_and_body
        if body.get("model") == "MODEL":
            body["model"] = server.model
        # ensure_ascii: lone surrogates travel as \\ud800 escapes, as a JSON client sends them
        content = json.dumps(body, ensure_ascii=True).encode()
        headers = {**server.auth, "Content-Type": "application/json"}
        response = httpx.post(f"{server.url}{path}", content=content, headers=headers, timeout=60)
        statuses.append(response.status_code)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            # 503 only for a request that waited past serve.request_timeout_s (not a failure)
            assert response.status_code < 500 or error["code"] == "timeout", response.text
        else:  # a stream's status is out before generation: a failure would be an error event
            assert '"server_error"' not in response.text, response.text

    check()
    # Worth something only if many bodies got past validation to generation.
    assert statuses.count(200) >= len(statuses) // 5, sorted(statuses)


def test_seed_range_and_invalid_unicode_are_400(server: Server) -> None:
    ok = server.post(
        "/v1/chat/completions",
        {"model": server.model, "messages": QUESTION, "max_tokens": 2, "seed": 2**63 - 1},
    )
    assert ok.status_code == 200, ok.text
    big = server.post(
        "/v1/chat/completions", {"model": server.model, "messages": QUESTION, "seed": 2**64}
    )
    assert big.status_code == 400 and big.json()["error"]["param"] == "seed"
    surrogate = '{"model": "%s", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=(surrogate % server.model).encode(),
        headers={**server.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content"
    assert "not valid Unicode" in response.json()["error"]["message"]


# --- item 5: hardening -----------------------------------------------------------------------


def test_docs_are_off_and_metrics_take_their_own_key(server: Server) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(f"{server.url}{path}").status_code == 404
    metrics = f"{server.url}/metrics"
    assert httpx.get(metrics).status_code == 401
    assert httpx.get(metrics, headers=server.auth).status_code == 401  # not the API key
    scraped = httpx.get(metrics, headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert scraped.status_code == 200 and "tunewright_requests_total" in scraped.text
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_docs_can_be_switched_on_and_metrics_follow_the_api_keys(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    with _server(tiny_model_dir, tmp_path / "log.jsonl", docs=True) as on:
        assert httpx.get(f"{on.url}/openapi.json").status_code == 200
        assert httpx.get(f"{on.url}/metrics").status_code == 401
        assert httpx.get(f"{on.url}/metrics", headers=on.auth).status_code == 200


def test_errors_never_echo_request_content(server: Server) -> None:
    marker = "<script>zq81</script>"
    bodies = [
        {"model": marker, "messages": QUESTION},
        {"model": server.model, "messages": QUESTION, marker: 1},
        {"model": server.model, "messages": [{"role": marker, "content": "x"}]},
        {"model": server.model, "messages": QUESTION, "presence_penalty": marker},
        {"model": server.model, "messages": [{"role": "user", "content": [{"type": marker}]}]},
    ]
    written = len(server.log_lines())
    for body in bodies:
        response = server.post("/v1/chat/completions", body)
        assert 400 <= response.status_code < 500, response.text
        assert "zq81" not in response.text
    missing = httpx.get(f"{server.url}/v1/{marker}", headers=server.auth)
    assert missing.status_code == 404 and "zq81" not in missing.text
    lines = server.log_lines()[written:]
    assert "zq81" not in json.dumps(lines)
    assert lines[0]["status"] == 404 and lines[0]["model"] is None  # not a served name


# --- item 2: admission control ---------------------------------------------------------------


def test_a_full_queue_is_429_and_a_late_start_is_503_both_with_retry_after(
    server: Server,
) -> None:
    client = server.client()

    def ask() -> Any:
        return client.chat.completions.create(
            model=server.model, messages=QUESTION, max_tokens=2, temperature=0
        )

    depth = server.queue_depth()
    with _held_worker(server) as held:
        running, running_out = _in_thread(ask)
        assert held.wait(timeout=60), "generation did not start"
        waiting = [_in_thread(ask) for _ in range(2)]  # max_queue: 2
        _until(lambda: server.queue_depth() == depth + 2, "two waiting requests")
        with pytest.raises(openai.RateLimitError) as refused:
            ask()
        stream = server.post(
            "/v1/chat/completions",
            {"model": server.model, "messages": QUESTION, "stream": True},
        )
        # The two waiting ones pass request_timeout_s (1.5 s) while the worker is held.
        for thread, _ in waiting:
            thread.join(timeout=60)
    running.join(timeout=60)
    assert refused.value.status_code == 429
    assert refused.value.body["type"] == "rate_limit_exceeded"
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert stream.status_code == 429  # a stream is refused with a status too, not an event
    for _, out in waiting:
        [error] = out
        assert isinstance(error, openai.InternalServerError) and error.status_code == 503
        assert "serve.request_timeout_s" in error.body["message"]
        assert int(error.response.headers["Retry-After"]) >= 1
    assert running_out[0].choices[0].finish_reason in ("stop", "length")
    assert server.queue_depth() == depth
    # The expired requests never ran: the next one is answered at once, in its own batch.
    assert ask().choices[0].finish_reason in ("stop", "length")


def test_a_stream_that_cannot_start_in_time_is_503(server: Server) -> None:
    body = {"model": server.model, "messages": QUESTION, "stream": True, "max_tokens": 2}
    with _held_worker(server) as held:
        blocker, _ = _in_thread(
            lambda: server.post("/v1/completions", {"model": server.model, "prompt": "hi"})
        )
        assert held.wait(timeout=60)
        late = server.post("/v1/chat/completions", body, timeout=60)
    blocker.join(timeout=60)
    assert late.status_code == 503 and late.headers["Retry-After"]
    assert late.json()["error"]["code"] == "timeout"


def _embedding(server: Server) -> Any:
    return server.pool.model.get_input_embeddings()


def test_a_client_that_leaves_a_running_request_stops_its_generation(server: Server) -> None:
    steps: list[float] = []  # time of each forward pass

    def slow_step(*args: Any) -> None:
        steps.append(time.monotonic())
        time.sleep(0.05)  # 8 tokens take 0.4 s: the client below leaves after 0.15 s

    hook = _lm_head(server).register_forward_pre_hook(slow_step)
    written = len(server.log_lines())
    body = {"model": server.model, "prompt": "hello", "max_tokens": 8, "temperature": 0}
    try:
        with pytest.raises(httpx.ReadTimeout):
            server.post("/v1/completions", body, timeout=0.15)
        _until(lambda: len(server.log_lines()) > written, "the log line")
        _until(lambda: time.monotonic() - steps[-1] > 0.3, "the worker to go idle")
    finally:
        hook.remove()
    assert len(steps) < 8, f"the abandoned request ran {len(steps)} decoding steps"
    line = server.log_lines()[written]
    assert line["status"] == 499 and "disconnected" in line["error"]


def test_a_client_that_leaves_while_waiting_is_never_generated(server: Server) -> None:
    widths: list[int] = []  # prompt lengths the model was given (decoding steps give 1)

    def record(module: Any, args: Any) -> None:
        widths.append(args[0].shape[1])

    long_prompt = "a much longer prompt than the other"
    length = len(server.pool.entries[server.model].tokenizer(long_prompt)["input_ids"])
    hook = _embedding(server).register_forward_pre_hook(record)
    written = len(server.log_lines())
    try:
        with _held_worker(server) as held:
            blocker, _ = _in_thread(
                lambda: server.post(
                    "/v1/completions", {"model": server.model, "prompt": "hi", "max_tokens": 2}
                )
            )
            assert held.wait(timeout=60)
            with pytest.raises(httpx.ReadTimeout):
                server.post(
                    "/v1/completions",
                    {"model": server.model, "prompt": long_prompt, "max_tokens": 2},
                    timeout=0.2,
                )
            # Released only once the server has seen the departure (else this races it).
            _until(lambda: len(server.log_lines()) > written, "the departure's log line")
        blocker.join(timeout=60)
        time.sleep(0.2)  # the worker would have taken the abandoned job by now
    finally:
        hook.remove()
    assert widths and length > 2 and length not in widths, (length, widths)
    assert server.log_lines()[written]["status"] == 499


def test_limits_on_messages_and_generations_per_request(server: Server) -> None:
    many = [{"role": "user", "content": "hi"}] * 9
    response = server.post("/v1/chat/completions", {"model": server.model, "messages": many})
    assert response.status_code == 400 and "serve.max_messages" in response.text
    prompts = server.post(
        "/v1/completions", {"model": server.model, "prompt": ["a"] * 3, "n": 2, "max_tokens": 1}
    )
    assert prompts.status_code == 400 and "serve.max_choices" in prompts.text
