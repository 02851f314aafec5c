"""The OpenAI features clients use, through the official openai client against a real server:
`stop`, `n`, `logprobs` / `top_logprobs`, `response_format` (json_object, json_schema), `tools`
with `tool_choice` (Hermes `<tool_call>` format, constrained when a call is forced),
`stream_options.include_usage` and `max_completion_tokens`.

The model is the tiny random Llama, so its text is nonsense: what the tests can check is that
the server keeps each promise whatever the model says (a stop string never appears, a forced
call is always a valid call, JSON follows its schema), and that reported numbers equal what a
direct computation on the same weights gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("llguidance")
openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")

from tests.support.serving import ServerThread  # noqa: E402

from tunewright.chat import prompt_ids  # noqa: E402
from tunewright.config import ServeSection  # noqa: E402
from tunewright.models import load_causal_lm, load_tokenizer  # noqa: E402
from tunewright.serving.app import build_app  # noqa: E402
from tunewright.serving.pool import load_pool  # noqa: E402
from tunewright.serving.stage import serve_settings, target_from_args  # noqa: E402

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"enum": ["Paris", "Lyon"]},
                "celsius": {"type": "boolean"},
            },
            "required": ["city", "celsius"],
            "additionalProperties": False,
        },
    },
}
PING = {"type": "function", "function": {"name": "ping"}}  # no arguments
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"enum": ["UTC", "CET"]}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def model_id(tiny_model_dir: Path) -> str:
    return tiny_model_dir.name


@pytest.fixture(scope="module")
def client(tiny_model_dir: Path) -> Iterator[Any]:
    pool = load_pool(target_from_args(str(tiny_model_dir)))
    settings = serve_settings(ServeSection(max_tokens=128, max_prompt_tokens=500))
    with ServerThread(build_app(pool, settings, None)) as server:
        yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)


def _ask(client: Any, model_id: str, **args: Any) -> Any:
    args = {"messages": QUESTION, "temperature": 0, **args}
    return client.chat.completions.create(model=model_id, **args)


def test_stop_cuts_before_the_stop_string_streaming_too(client: Any, model_id: str) -> None:
    # The random model says nothing when greedy; a seeded sample repeats exactly.
    sampled = {"max_tokens": 24, "temperature": 1.0, "seed": 3}
    full = _ask(client, model_id, **sampled).choices[0].message.content
    assert len(full) > 12, full
    stop = full[6:9]
    expected = full[: full.index(stop)].strip()
    reply = _ask(client, model_id, **sampled, stop=[stop, "never-said"])
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens < 24
    stream = _ask(client, model_id, **sampled, stop=stop, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = (
        client.completions.create(
            model=model_id, prompt="The quick brown", max_tokens=24, temperature=0
        )
        .choices[0]
        .text
    )
    stop = text[4:6]
    cut = client.completions.create(
        model=model_id, prompt="The quick brown", max_tokens=24, temperature=0, stop=stop
    ).choices[0]
    assert cut.text == text[: text.index(stop)].strip() and cut.finish_reason == "stop"


def test_n_gives_that_many_choices(client: Any, model_id: str) -> None:
    greedy = _ask(client, model_id, max_tokens=6, n=2)
    assert [c.index for c in greedy.choices] == [0, 1]
    assert greedy.choices[0].message.content == greedy.choices[1].message.content
    sampled = client.chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=12, n=3, temperature=1.5, seed=7
    )
    texts = [c.message.content for c in sampled.choices]
    assert len(texts) == 3 and len(set(texts)) > 1  # rows of one batch draw different samples
    completions = client.completions.create(
        model=model_id, prompt=["one", "two"], n=2, max_tokens=3, temperature=0
    )
    assert [c.index for c in completions.choices] == [0, 1, 2, 3]
    assert completions.choices[0].text == completions.choices[1].text


def test_logprobs_equal_the_models_own(client: Any, model_id: str, tiny_model_dir: Path) -> None:
    import torch

    reply = _ask(client, model_id, max_tokens=5, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert content and len(content) <= 5
    for token in content:
        assert len(token.top_logprobs) == 3
        assert token.logprob <= 0
        # greedy: the chosen token is the most likely one
        assert token.token == token.top_logprobs[0].token
        assert token.logprob == pytest.approx(token.top_logprobs[0].logprob, abs=1e-5)
    model, tokenizer = load_causal_lm(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    ids = prompt_ids(tokenizer, QUESTION)
    with torch.no_grad():
        first = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
    assert content[0].logprob == pytest.approx(first.max().item(), abs=1e-4)
    legacy = (
        client.completions.create(
            model=model_id, prompt="The quick brown", max_tokens=4, temperature=0, logprobs=2
        )
        .choices[0]
        .logprobs
    )
    assert len(legacy.tokens) == len(legacy.token_logprobs) == len(legacy.top_logprobs) == 4
    assert all(len(top) <= 2 for top in legacy.top_logprobs)


def test_json_schema_and_json_object_are_enforced(client: Any, model_id: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"enum": ["Paris", "Lyon"]},
            "sunny": {"type": "boolean"},
            "code": {"type": "string", "maxLength": 4},
        },
        "required": ["city", "sunny", "code"],
        "additionalProperties": False,
    }
    reply = _ask(
        client,
        model_id,
        max_tokens=120,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": schema, "strict": True},
        },
    )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)
    # Any object may run past max_tokens on a random model; this seeded sample closes early.
    free = _ask(
        client,
        model_id,
        max_tokens=120,
        temperature=1.0,
        seed=5,
        response_format={"type": "json_object"},
    )
    assert free.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(free.choices[0].message.content), dict)
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(
            client,
            model_id,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "bad", "schema": {"type": "no-such-type"}},
            },
        )
    assert caught.value.body["param"] == "response_format.json_schema.schema"


def test_a_forced_tool_call_is_a_valid_call(client: Any, model_id: str) -> None:
    required = _ask(client, model_id, max_tokens=120, tools=[WEATHER], tool_choice="required")
    choice = required.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    named = _ask(
        client,
        model_id,
        max_tokens=80,
        tools=[PING, TIME],  # short: the tiny tokenizer spends ~1 token per 1.5 characters
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    [call] = named.choices[0].message.tool_calls
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments)["zone"] in ("UTC", "CET")
    # The call and its result go back into the conversation, and the model answers.
    history = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"time": "12:00"}'},
    ]
    follow = _ask(client, model_id, messages=history, max_tokens=4, tools=[TIME])
    assert follow.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_streamed_tool_calls_accumulate_like_openai(client: Any, model_id: str) -> None:
    stream = _ask(
        client,
        model_id,
        max_tokens=120,
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert [call.function.name for call in calls] == ["get_weather"]
    jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_usage_in_streams_and_max_completion_tokens(client: Any, model_id: str) -> None:
    reply = _ask(client, model_id, max_completion_tokens=3)
    assert reply.usage.completion_tokens <= 3
    chunks = list(
        client.completions.create(
            model=model_id,
            prompt="The quick brown",
            max_tokens=3,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.prompt_tokens > 0


def test_models_the_loop_cannot_merge_are_served_a_batch_at_a_time(
    tiny_model_dir: Path, model_id: str
) -> None:
    """Sliding-window caches cannot be merged by the continuous loop; such models go through
    `model.generate` a batch at a time, with the same per-row features."""
    from tunewright.generate import Decoding, generate_ids

    model, tokenizer = load_causal_lm(tiny_model_dir).eval(), load_tokenizer(tiny_model_dir)
    pool = load_pool(target_from_args(str(tiny_model_dir)))
    settings = serve_settings(ServeSection(max_tokens=128, max_prompt_tokens=500))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tunewright.serving.worker.supports_continuous", lambda model: False)
        with ServerThread(build_app(pool, settings, None)) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
            prompt = [{"role": "user", "content": "hello"}]
            text = (
                client.completions.create(
                    model=model_id, prompt="The quick brown", max_tokens=12, temperature=0
                )
                .choices[0]
                .text
            )
            stopped = client.completions.create(
                model=model_id,
                prompt="The quick brown",
                max_tokens=12,
                temperature=0,
                stop=text[3:5],
            ).choices[0]
            called = _ask(
                client,
                model_id,
                messages=prompt,
                max_tokens=120,
                tools=[WEATHER],
                tool_choice="required",
            )
    assert stopped.text == text[: text.index(text[3:5])].strip()
    assert stopped.finish_reason == "stop"
    [call] = called.choices[0].message.tool_calls
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    ids = tokenizer("The quick brown")["input_ids"]
    expected = generate_ids(model, tokenizer, [ids], Decoding(max_new_tokens=12))[0]
    assert text == expected and text
