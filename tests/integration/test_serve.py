"""`tunewright serve` end to end: a real server on 127.0.0.1, driven by the official openai client.

The server runs in a background thread (uvicorn.Server, stopped with should_exit) over the tiny
random Llama and a LoRA adapter whose lora_B weights are random, so the adapter really changes
the output; the adapter's tokenizer carries its own chat template (a fixed system turn first), so
the tests can tell which template rendered a prompt. Expected answers come from calling
`generate` directly on a second copy of the same weights.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tests.support.serving import ServerThread  # noqa: E402

from tunewright.chat import prompt_ids  # noqa: E402
from tunewright.config import ServeSection  # noqa: E402
from tunewright.generate import Decoding, generate, generate_ids  # noqa: E402
from tunewright.models import load_causal_lm, load_tokenizer  # noqa: E402
from tunewright.serving.app import build_app  # noqa: E402
from tunewright.serving.pool import ModelPool, load_pool  # noqa: E402
from tunewright.serving.stage import serve_settings, target_from_args  # noqa: E402

API_KEY = "sk-test-do-not-log-3f9c1e"
TUNED = "tuned"
MAX_PROMPT = 64
MAX_TOKENS = 480  # room for the long generations below within the tiny model's 512 positions
ADAPTER_TEMPLATE = (
    "{{ '<|im_start|>system\nYou are tuned.<|im_end|>\n' }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class Served:
    url: str
    log: Path
    pool: ModelPool
    base_id: str

    def client(self, api_key: str = API_KEY) -> Any:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.is_file() else ""  # written from the 1st request

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines()]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(load_causal_lm(tiny_model_dir), lora)
    with torch.no_grad():  # fresh LoRA is a no-op (lora_B = 0): make it change the output
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = ADAPTER_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


def _serve(
    tiny_model_dir: Path, adapter_dir: Path, log: Path, **section: Any
) -> tuple[ModelPool, Any]:
    target = target_from_args(str(tiny_model_dir), [f"{TUNED}={adapter_dir}"])
    pool = load_pool(target)
    settings = serve_settings(
        ServeSection(
            api_keys=[API_KEY], max_prompt_tokens=MAX_PROMPT, max_tokens=MAX_TOKENS, **section
        )
    )
    return pool, build_app(pool, settings, log)


@pytest.fixture(scope="module")
def served(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("serve") / "requests.jsonl"
    pool, app = _serve(tiny_model_dir, adapter_dir, log)
    with ServerThread(app) as server:
        yield Served(server.url, log, pool, tiny_model_dir.name)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, adapter_dir: Path) -> dict[str, tuple[Any, Any]]:
    """(model, tokenizer) per served id, loaded apart from the server, for expected answers."""
    from peft import PeftModel

    base = load_causal_lm(tiny_model_dir).eval()
    tuned = PeftModel.from_pretrained(load_causal_lm(tiny_model_dir), adapter_dir).eval()
    return {
        tiny_model_dir.name: (base, load_tokenizer(tiny_model_dir)),
        TUNED: (tuned, load_tokenizer(adapter_dir)),
    }


def _expected(reference: dict, model_id: str, messages: list[dict], max_tokens: int) -> str:
    model, tokenizer = reference[model_id]
    return generate(model, tokenizer, [messages], Decoding(max_new_tokens=max_tokens))[0]


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _queue_depth(url: str) -> float:
    return _metrics(url)[("tunewright_queue_depth", ())]


def _lm_head(served: Served) -> Any:
    return next(m for name, m in served.pool.model.named_modules() if name.endswith("lm_head"))


@contextlib.contextmanager
def _held_worker(served: Served) -> Iterator[threading.Event]:
    """Stops the generation worker inside its next forward pass until the block ends. Yields an
    event that is set once the worker is held: the tests wait for it instead of sleeping."""
    held, release = threading.Event(), threading.Event()

    def hold(*args: Any) -> None:
        held.set()
        release.wait()

    hook = _lm_head(served).register_forward_pre_hook(hold)
    try:
        yield held
    finally:
        release.set()
        hook.remove()


def _until(condition: Callable[[], bool], what: str) -> None:
    """Waits for a state of the server; the limit only turns a hang into a failure."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


# --- models and generation -------------------------------------------------------------------


def test_models_lists_the_base_and_each_adapter(served: Served) -> None:
    listed = served.client().models.list()
    assert [m.id for m in listed.data] == [served.base_id, TUNED]
    assert served.client().models.retrieve(TUNED).id == TUNED


def test_chat_answers_like_generate_with_the_adapters_template(
    served: Served, reference: dict
) -> None:
    reply = served.client().chat.completions.create(
        model=TUNED, messages=QUESTION, max_tokens=12, temperature=0
    )
    expected = _expected(reference, TUNED, QUESTION, 12)
    assert expected  # the random adapter says something, so equality means something
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == TUNED
    # The adapter's own template (with its system turn) rendered the prompt, not the base's.
    tuned_tokens = len(prompt_ids(reference[TUNED][1], QUESTION))
    base_tokens = len(prompt_ids(reference[served.base_id][1], QUESTION))
    assert tuned_tokens != base_tokens
    assert reply.usage.prompt_tokens == tuned_tokens
    assert 0 < reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == tuned_tokens + reply.usage.completion_tokens


def test_streamed_chat_joins_to_the_same_answer(served: Served, reference: dict) -> None:
    stream = served.client().chat.completions.create(
        model=TUNED,
        messages=QUESTION,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == _expected(reference, TUNED, QUESTION, 12)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_the_base_id_runs_without_the_adapter(served: Served, reference: dict) -> None:
    client = served.client()
    prompt = [{"role": "user", "content": "hello"}]
    base = client.chat.completions.create(
        model=served.base_id, messages=prompt, max_tokens=10, temperature=0
    )
    tuned = client.chat.completions.create(
        model=TUNED, messages=prompt, max_tokens=10, temperature=0
    )
    assert base.choices[0].message.content == _expected(reference, served.base_id, prompt, 10)
    assert tuned.choices[0].message.content == _expected(reference, TUNED, prompt, 10)
    assert base.choices[0].message.content != tuned.choices[0].message.content


def test_completions_take_plain_text_without_template(served: Served, reference: dict) -> None:
    model, tokenizer = reference[served.base_id]
    ids = tokenizer("The quick brown")["input_ids"]
    expected = generate_ids(model, tokenizer, [ids], Decoding(max_new_tokens=8))[0]
    client = served.client()
    reply = client.completions.create(
        model=served.base_id, prompt="The quick brown", max_tokens=8, temperature=0
    )
    assert reply.choices[0].text == expected and expected
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 8
    streamed = client.completions.create(
        model=served.base_id, prompt="The quick brown", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected


# --- refusals ----------------------------------------------------------------------------------


def test_wrong_or_missing_api_key_is_401_in_openai_shape(served: Served) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        served.client(api_key="sk-wrong").models.list()
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["code"] == "invalid_api_key"
    response = httpx.post(f"{served.url}/v1/chat/completions", json={})
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert API_KEY not in response.text
    assert httpx.get(f"{served.url}/health").status_code == 200  # probes need no key


@pytest.mark.parametrize(
    ("request_args", "expected"),
    [
        ({"max_tokens": 10_000}, "serve.max_tokens"),
        ({"messages": [{"role": "user", "content": "word " * 200}]}, "serve.max_prompt_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"seed": 2**64}, "seed"),
        ({"n": 17}, "serve.max_choices"),
        ({"temperature": 5}, "temperature"),
    ],
)
def test_bad_requests_are_400_with_a_clear_message(
    served: Served, request_args: dict, expected: str
) -> None:
    args = {"model": TUNED, "messages": QUESTION, "max_tokens": 4, **request_args}
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(**args)
    assert expected in caught.value.body["message"]
    assert caught.value.body["type"] == "invalid_request_error"


def test_too_long_prompt_names_the_limit_and_code(served: Served) -> None:
    long = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(model=TUNED, messages=long, max_tokens=4)
    assert caught.value.code == "context_length_exceeded"
    assert f"at most {MAX_PROMPT}" in caught.value.body["message"]


def test_malformed_missing_and_oversized_bodies_are_400(served: Served) -> None:
    url = f"{served.url}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    malformed = httpx.post(url, content=b'{"model": "tuned", "messages": [', headers=auth)
    missing = httpx.post(url, json={"model": TUNED}, headers=auth)
    big = b'{"model": "tuned", "pad": "' + b"x" * (2 << 20) + b'"}'
    oversized = httpx.post(url, content=big, headers=auth)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count while reading
        for start in range(0, len(big), 1 << 16):
            yield big[start : start + (1 << 16)]

    chunked = httpx.post(url, content=chunks(), headers=auth)
    for response in (malformed, missing, oversized, chunked):
        assert response.status_code == 400, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert "not valid JSON" in malformed.json()["error"]["message"]
    assert missing.json()["error"]["param"] == "messages"
    assert "at most 1048576" in oversized.json()["error"]["message"]
    assert "at most 1048576" in chunked.json()["error"]["message"]


def test_unknown_model_is_404_listing_the_served_ones(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        served.client().chat.completions.create(model="gpt-5", messages=QUESTION)
    assert caught.value.code == "model_not_found"
    assert TUNED in caught.value.body["message"]


# --- observability ---------------------------------------------------------------------------


def test_metrics_count_requests_errors_and_tokens(served: Served) -> None:
    before = _metrics(served.url)
    client = served.client()
    reply = client.chat.completions.create(
        model=TUNED, messages=QUESTION, max_tokens=5, temperature=0
    )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=TUNED, messages=QUESTION, max_tokens=10_000)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=QUESTION)
    after = _metrics(served.url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    chat = "/v1/chat/completions"
    assert delta("tunewright_requests_total", endpoint=chat, model=TUNED, status="200") == 1
    assert delta("tunewright_requests_total", endpoint=chat, model=TUNED, status="400") == 1
    assert delta("tunewright_requests_total", endpoint=chat, model="", status="404") == 1
    assert delta("tunewright_errors_total", endpoint=chat, status="400") == 1
    assert delta("tunewright_errors_total", endpoint=chat, status="404") == 1
    assert delta("tunewright_prompt_tokens_total", model=TUNED) == reply.usage.prompt_tokens
    completion = reply.usage.completion_tokens
    assert delta("tunewright_completion_tokens_total", model=TUNED) == completion
    assert delta("tunewright_request_latency_seconds_count", endpoint=chat) == 3
    assert ("tunewright_queue_depth", ()) in after
    assert after[("tunewright_tokens_per_second", ())] > 0


def test_request_log_has_one_line_per_request_and_no_content(served: Served) -> None:
    client = served.client()
    written = len(served.log_lines())  # other tests share the server and its log
    client.chat.completions.create(model=TUNED, messages=QUESTION, max_tokens=3, temperature=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=TUNED, messages=QUESTION, max_tokens=10_000)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=QUESTION)
    with pytest.raises(openai.AuthenticationError):
        served.client(api_key="sk-wrong").chat.completions.create(model=TUNED, messages=QUESTION)
    lines = served.log_lines()
    # A line is written before the response's last byte, so each request's line is already here.
    assert [line["status"] for line in lines[written:]] == [200, 400, 404, 401]
    ok = next(line for line in reversed(lines) if line["status"] == 200)
    assert ok["endpoint"] == "/v1/chat/completions" and ok["model"] == TUNED
    assert ok["prompt_tokens"] > 0 and ok["completion_tokens"] > 0 and ok["latency_s"] > 0
    assert ok["prompt_words"] == 6 and ok["error"] is None and ok["request_id"]
    refused = next(line for line in reversed(lines) if line["status"] == 401)
    assert refused["error"] == "Incorrect API key provided."
    assert not any("prompt" in line or "output" in line for line in lines)
    text = served.log_text()
    assert "capital of France" not in text
    assert API_KEY not in text and "sk-wrong" not in text


def test_log_content_writes_prompts_and_outputs(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    _, app = _serve(tiny_model_dir, adapter_dir, log, log_content=True)
    with ServerThread(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
        reply = client.chat.completions.create(
            model=TUNED, messages=QUESTION, max_tokens=6, temperature=0
        )
    [line] = [json.loads(text) for text in log.read_text().splitlines()]
    assert line["prompt"] == QUESTION
    assert line["output"] == reply.choices[0].message.content
    assert API_KEY not in log.read_text()


def test_health_answers_while_the_worker_is_busy(served: Served) -> None:
    client = served.client()
    # Different max_tokens cannot share a batch: six long generations run one after another.
    # The base model repeats "\n" and never stops, so each runs its full length.
    results: list[Any] = []

    def long_request(max_tokens: int) -> None:
        results.append(
            client.completions.create(
                model=served.base_id, prompt="hello", max_tokens=max_tokens, temperature=0
            )
        )

    threads = [threading.Thread(target=long_request, args=(440 + i,)) for i in range(6)]
    with _held_worker(served) as held:
        for thread in threads:
            thread.start()
        assert held.wait(timeout=120), "generation did not start"
        # The worker is stopped inside a forward pass, so each answer below came while it was
        # generating: the event loop does not wait for the model.
        for _ in range(5):
            assert httpx.get(f"{served.url}/health", timeout=30).json()["status"] == "ok"
        assert all(thread.is_alive() for thread in threads)  # none answered yet
    for thread in threads:
        thread.join()
    assert len(results) == 6 and all(r.choices[0].finish_reason == "length" for r in results)


def test_serve_settings_join_config_and_environment_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEWRIGHT_API_KEYS", " env-1, ,env-2,cfg-1")
    settings = serve_settings(ServeSection(api_keys=["cfg-1"]))
    assert settings.api_keys == ("cfg-1", "env-1", "env-2")
    assert "cfg-1" not in repr(ServeSection(api_keys=["cfg-1"]))


def test_a_generation_failure_is_a_500_in_openai_shape_and_is_logged(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(served.pool.model, "forward", broken)
    client = served.client()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=TUNED, messages=QUESTION, max_tokens=3)
    assert "RuntimeError" in caught.value.body["message"]
    with pytest.raises(openai.APIError, match="RuntimeError"):  # after the stream has started
        list(
            client.chat.completions.create(
                model=TUNED, messages=QUESTION, max_tokens=3, stream=True
            )
        )
    last_two = served.log_lines()[-2:]
    assert [line["status"] for line in last_two] == [500, 200]
    assert all("RuntimeError" in line["error"] for line in last_two)
    monkeypatch.undo()
    reply = client.chat.completions.create(model=TUNED, messages=QUESTION, max_tokens=3)
    assert reply.choices[0].finish_reason in ("stop", "length")  # the worker lives on


def test_waiting_requests_share_a_batch_and_get_their_own_answers(
    served: Served, reference: dict
) -> None:
    client = served.client()
    questions = [[{"role": "user", "content": f"Translate to French: {w}"}] for w in "abcdefgh"]
    answers: dict[int, str] = {}

    def ask(index: int) -> None:
        reply = client.chat.completions.create(
            model=TUNED, messages=questions[index], max_tokens=6, temperature=0
        )
        answers[index] = reply.choices[0].message.content

    before = _metrics(served.url)
    depth = _queue_depth(served.url)
    # A long generation holds the worker until all eight questions wait in its queue.
    blocker = threading.Thread(
        target=lambda: client.completions.create(
            model=served.base_id, prompt="hello", max_tokens=470, temperature=0
        )
    )
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    with _held_worker(served) as held:
        blocker.start()
        assert held.wait(timeout=120), "the blocking generation did not start"
        for thread in threads:
            thread.start()
        _until(lambda: _queue_depth(served.url) == depth + len(questions), "the questions")
    for thread in [blocker, *threads]:
        thread.join()
    after = _metrics(served.url)
    batches = (
        after[("tunewright_batch_size_count", ())] - before[("tunewright_batch_size_count", ())]
    )
    assert batches < 1 + len(questions)  # some questions were answered together
    for index, messages in enumerate(questions):
        assert answers[index] == _expected(reference, TUNED, messages, 6)


def test_a_client_leaving_a_stream_stops_its_generation(served: Served) -> None:
    steps: list[float] = []  # time of each forward pass (one per decoding step)
    written = len(served.log_lines())
    left = threading.Event()

    def departure_logged() -> bool:  # newlines, not JSON: a line may be half written
        return served.log_text().count("\n") > written

    def step(*args: Any) -> None:
        # 10 ms per decoding step keeps the 470-token stream below going (~5 s) while its
        # client reads the first line and leaves. From then on each step waits until the server
        # has logged the departure (it cancels the job before that): a generation that stops
        # for departed clients stops at the next step, one that does not runs to 470 tokens.
        steps.append(time.monotonic())
        time.sleep(0.01)
        if left.is_set():
            _until(departure_logged, "the abandoned stream's log line")

    hook = _lm_head(served).register_forward_pre_hook(step)
    body = {
        "model": served.base_id,
        "prompt": "hello",
        "max_tokens": 470,
        "temperature": 0,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        with httpx.stream(
            "POST", f"{served.url}/v1/completions", json=body, headers=headers
        ) as response:
            next(response.iter_lines())  # generation has started
        left.set()
        reply = served.client().completions.create(
            model=served.base_id, prompt="hello", max_tokens=3, temperature=0
        )
        # Once the worker is idle, count the steps: a stream that kept going would run ~470.
        _until(lambda: time.monotonic() - steps[-1] > 0.5, "the worker to go idle")
    finally:
        left.set()
        hook.remove()
    assert reply.choices[0].finish_reason == "length"
    assert len(steps) < 100, f"{len(steps)} decoding steps: the stream went on"
    abandoned, answered = served.log_lines()[written:]
    assert abandoned["endpoint"] == answered["endpoint"] == "/v1/completions"
    assert abandoned["error"] == "the client disconnected before the stream ended"
    assert answered["status"] == 200 and answered["error"] is None


def test_a_request_joins_a_running_generation_and_is_answered_first(served: Served) -> None:
    """Iteration-level scheduling: a short request arriving mid-way through a long one joins
    its batch at the next step and leaves with its answer while the long one goes on."""
    steps: list[int] = []

    def slow_step(*args: Any) -> None:
        steps.append(args[1][0].shape[0])  # rows in this forward pass
        time.sleep(0.01)  # 440 steps: ~4.5 s

    client = served.client()
    long: list[Any] = []
    thread = threading.Thread(
        target=lambda: long.append(
            client.completions.create(
                model=served.base_id, prompt="hello", max_tokens=440, temperature=0
            )
        )
    )
    hook = _lm_head(served).register_forward_pre_hook(slow_step)
    try:
        thread.start()
        _until(lambda: len(steps) > 20, "the long generation to run")
        short = client.completions.create(
            model=served.base_id, prompt="The quick brown", max_tokens=3, temperature=0
        )
        still_running = thread.is_alive()
        thread.join()
    finally:
        hook.remove()
    assert short.usage.completion_tokens == 3
    assert still_running, "the short request waited for the long one"
    assert long[0].usage.completion_tokens == 440
    assert 2 in steps  # the two shared decoding steps
