"""Load tests for `tunewright serve`, alone or side by side with `transformers serve`.

    python bench/serve_load.py [--mode closed|side-by-side|open|soak] [--model NAME]
        [--clients 32] [--seconds 30] [--max-tokens 16] [--batch-size 32] [--dtype auto]
        [--rate R] [--max-queue N] [--request-timeout S] [--url URL] [--api-key KEY]

Modes:
- closed (default): N clients send chat requests back to back for T seconds, then wait for
  their last answers. Prints requests/s, latency percentiles, tokens/s, the server's mean batch
  size and errors, ending with `all answered: yes|no`.
- side-by-side: the closed load against our server, then against `transformers serve
  --continuous-batching` on the same model folder at the same dtype (ours: `model.dtype: auto`,
  bf16 where the processor or GPU has native bf16; `--dtype` sets both), one after the other;
  prints both and `ratio:` (our requests/s / theirs) with both p95s.
- open: requests arrive at --rate per second for T seconds whatever the answers (open loop), as
  streams; reports admitted vs shed (429/503, each checked for Retry-After), p50/p95/p99 latency
  of admitted requests, time to first token, and the 5xx count. Run it at about twice the
  capacity a closed run shows.
- soak: the closed load for T seconds (default 600) with the server's resident memory sampled
  after the first answers and at the end; prints `rss growth:` in percent.

Without --url the script starts our server itself on 127.0.0.1 (a separate process, so clients
do not compete with it for the GIL) and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

QUESTIONS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "What is 12 times 7?",
    "Give me a synonym for happy.",
    "What is the boiling point of water in Celsius?",
    "Translate 'good morning' to Spanish.",
    "Who wrote Romeo and Juliet?",
    "What planet is known as the red planet?",
]
REQUEST_TIMEOUT_S = 300  # a request stuck longer than this counts as unanswered
START_TIMEOUT_S = 300  # the first use of an embedded model converts it


@dataclass
class Outcome:
    latency_s: float
    status: int  # 0: no HTTP answer (timeout, connection error)
    completion_tokens: int
    first_token_s: float | None = None  # streams only
    retry_after: bool = False  # a refusal carried Retry-After


@dataclass
class Server:
    url: str
    pid: int
    stop: Callable[[], None]
    log_path: Path | None = None


@dataclass
class Result:
    outcomes: list[Outcome]
    wall_s: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200]

    @property
    def requests_per_s(self) -> float:
        return len(self.answered) / self.wall_s

    def latency(self, q: int) -> float:
        return _percentile([o.latency_s for o in self.answered], q)


def main() -> None:
    args = _arguments()
    if args.mode == "side-by-side":
        side_by_side(args)
        return
    server = None if args.url else start_ours(args)
    url = args.url or server.url  # type: ignore[union-attr]
    try:
        if args.mode == "open":
            result = asyncio.run(run_open(url, args))
            report_open(result, args)
        elif args.mode == "soak":
            result = asyncio.run(run_closed(url, args, pid=server.pid if server else None))
            report_closed("tunewright", result, args, server_batch_mean(url, args.api_key))
            report_soak(result)
        else:
            result = asyncio.run(run_closed(url, args))
            report_closed("tunewright", result, args, server_batch_mean(url, args.api_key))
    finally:
        if server is not None:
            server.stop()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["closed", "side-by-side", "open", "soak"])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32, help="our server's batch size")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16 or float32 (both servers)")
    parser.add_argument("--rate", type=float, help="open mode: arrivals per second")
    parser.add_argument("--max-queue", type=int, default=128, help="our serve.max_queue")
    parser.add_argument("--request-timeout", type=float, default=60, help="serve.request_timeout_s")
    parser.add_argument("--url", help="target a running server instead, e.g. http://host:8000")
    parser.add_argument("--api-key", default="", help="for a running server that needs one")
    args = parser.parse_args()
    args.mode = args.mode or "closed"
    if args.seconds is None:
        args.seconds = {"soak": 600.0, "open": 60.0}.get(args.mode, 30.0)
    if args.mode == "open" and not args.rate:
        parser.error("--mode open needs --rate (about twice what a closed run answers per second)")
    if args.mode == "side-by-side" and args.url:
        parser.error("--mode side-by-side starts both servers itself; drop --url")
    args.dtype = _dtype_name(args.dtype)
    return args


def _dtype_name(dtype: str) -> str:
    import torch

    from tunewright.models import resolve_dtype

    return str(resolve_dtype(dtype, torch)).removeprefix("torch.")


# --- servers ---------------------------------------------------------------------------------


def start_ours(args: argparse.Namespace) -> Server:
    log_path = Path(tempfile.mkdtemp(prefix="serve-load-")) / "requests.jsonl"
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve,
        args=(args.model, args.dtype, args.batch_size, args.max_queue, args.request_timeout),
        kwargs={"port": port, "log_path": log_path},
        daemon=True,
    )
    process.start()
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        process.terminate()
        process.join(30)

    _wait_healthy(url, process.is_alive, stop)
    print(f"tunewright serve ({args.dtype}) at {url}, log: {log_path}")
    assert process.pid is not None
    return Server(url, process.pid, stop, log_path)


def _serve(
    model: str,
    dtype: str,
    batch_size: int,
    max_queue: int,
    request_timeout_s: float,
    *,
    port: int,
    log_path: Path,
) -> None:
    import dataclasses

    from tunewright.serving.app import ServeSettings
    from tunewright.serving.stage import serve, target_from_args

    target = dataclasses.replace(target_from_args(model), dtype=dtype)
    settings = ServeSettings(
        batch_size=batch_size, max_queue=max_queue, request_timeout_s=request_timeout_s
    )
    serve(target, settings, "127.0.0.1", port, log_path)


def start_transformers(args: argparse.Namespace) -> Server:
    """`transformers serve MODEL_DIR --continuous-batching` at our dtype."""
    from tunewright.models import resolve_model

    cli = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    port = _free_port()
    command = [
        cli,
        "serve",
        str(resolve_model(args.model)),
        "--continuous-batching",
        "--dtype",
        args.dtype,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()

    _wait_healthy(url, lambda: process.poll() is None, stop)
    print(f"transformers serve --continuous-batching ({args.dtype}) at {url}")
    return Server(url, process.pid, stop)


def _wait_healthy(url: str, alive: Callable[[], bool], stop: Callable[[], None]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise SystemExit(f"the server for {url} exited during start-up")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop()
    raise SystemExit(f"the server for {url} did not answer /health within {START_TIMEOUT_S} s")


def _free_port() -> int:
    with socket.socket() as probe:  # released just before the server binds it
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (Linux /proc), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- load ------------------------------------------------------------------------------------


def _client(url: str, args: argparse.Namespace, connections: int) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_S
    )


def _body(model: str, index: int, max_tokens: int, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}],
        "max_tokens": max_tokens,
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


async def _warm_up(client: httpx.AsyncClient, args: argparse.Namespace) -> str:
    """The served model's id, after one untimed request (a server may load or warm up lazily:
    transformers serve's first continuous-batching request takes seconds)."""
    model = (await client.get("/v1/models")).json()["data"][0]["id"]
    await _post(client, _body(model, 0, args.max_tokens))
    return model


async def run_closed(url: str, args: argparse.Namespace, pid: int | None = None) -> Result:
    async with _client(url, args, args.clients) as client:
        model = await _warm_up(client, args)
        outcomes: list[Outcome] = []
        notes: dict[str, Any] = {}
        started = time.perf_counter()
        deadline = started + args.seconds

        async def one_client(index: int) -> None:
            sent = 0
            while time.perf_counter() < deadline:
                outcomes.append(await _post(client, _body(model, index + sent, args.max_tokens)))
                sent += 1

        async def sample_rss() -> None:
            while not outcomes:  # the model's first answers warm its caches
                await asyncio.sleep(0.5)
            notes["rss_start_mb"] = rss_mb(pid) if pid else None
            # Then every 10 s, so a soak shows whether memory levels off or keeps growing.
            samples = notes.setdefault("rss_mb", [])
            while pid and time.perf_counter() < deadline:
                await asyncio.sleep(10)
                samples.append((time.perf_counter() - started, rss_mb(pid)))

        tasks = [one_client(index) for index in range(args.clients)]
        await asyncio.gather(*tasks, sample_rss())
        notes["rss_end_mb"] = rss_mb(pid) if pid else None
        return Result(outcomes, time.perf_counter() - started, notes)


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions", json=body)
        tokens = response.json()["usage"]["completion_tokens"] if response.is_success else 0
        status = response.status_code
        retry = "retry-after" in response.headers
    except (httpx.HTTPError, ValueError, KeyError):
        status, tokens, retry = 0, 0, False
    return Outcome(time.perf_counter() - started, status, tokens, retry_after=retry)


async def run_open(url: str, args: argparse.Namespace) -> Result:
    """Arrivals every 1/rate seconds for T seconds, each a stream, whatever the answers."""
    count = int(args.rate * args.seconds)
    async with _client(url, args, max(count, 1)) as client:
        model = await _warm_up(client, args)
        started = time.perf_counter()

        async def arrival(index: int) -> Outcome:
            await asyncio.sleep(max(0.0, started + index / args.rate - time.perf_counter()))
            return await _stream(client, _body(model, index, args.max_tokens, stream=True))

        outcomes = await asyncio.gather(*(arrival(i) for i in range(count)))
        return Result(list(outcomes), time.perf_counter() - started)


async def _stream(client: httpx.AsyncClient, body: dict[str, Any]) -> Outcome:
    started = time.perf_counter()
    first, tokens = None, 0
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                retry = "retry-after" in response.headers
                return Outcome(time.perf_counter() - started, response.status_code, 0, None, retry)
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    return Outcome(time.perf_counter() - started, 500, 0, first)
                if first is None and any(c["delta"].get("content") for c in event["choices"]):
                    first = time.perf_counter() - started
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
    except (httpx.HTTPError, ValueError, KeyError):
        return Outcome(time.perf_counter() - started, 0, 0, first)
    return Outcome(time.perf_counter() - started, 200, tokens, first)


def server_batch_mean(url: str, api_key: str) -> float | None:
    """Mean requests per generation batch, from our server's /metrics."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        text = httpx.get(f"{url.rstrip('/')}/metrics", headers=headers, timeout=10).text
    except httpx.HTTPError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("tunewright_batch_size_sum", "tunewright_batch_size_count"):
            values[name] = float(value)
    count = values.get("tunewright_batch_size_count")
    return values["tunewright_batch_size_sum"] / count if count else None


# --- modes and reports -----------------------------------------------------------------------


def side_by_side(args: argparse.Namespace) -> None:
    ours = start_ours(args)
    try:
        mine = asyncio.run(run_closed(ours.url, args))
        report_closed("tunewright", mine, args, server_batch_mean(ours.url, args.api_key))
    finally:
        ours.stop()
    peer = start_transformers(args)
    try:
        theirs = asyncio.run(run_closed(peer.url, args))
        report_closed("transformers", theirs, args, None)
    finally:
        peer.stop()
    ratio = mine.requests_per_s / theirs.requests_per_s if theirs.requests_per_s else float("inf")
    print(
        f"ratio: {ratio:.2f} (requests/s, tunewright / transformers --continuous-batching, "
        f"{args.dtype}); p95 {mine.latency(95):.2f} s vs {theirs.latency(95):.2f} s"
    )


def report_closed(
    name: str, result: Result, args: argparse.Namespace, batch_mean: float | None
) -> None:
    answered, errors = result.answered, len(result.outcomes) - len(result.answered)
    tokens = sum(o.completion_tokens for o in answered)
    print(
        f"[{name}] clients: {args.clients}, seconds: {args.seconds:g}, max_tokens: "
        f"{args.max_tokens}, wall: {result.wall_s:.1f} s (includes waiting for the last answers)"
    )
    print(
        f"[{name}] requests: {len(result.outcomes)} sent, {len(answered)} answered, {errors} errors"
    )
    print(
        f"[{name}] throughput: {result.requests_per_s:.2f} requests/s, "
        f"{tokens / result.wall_s:.1f} tokens/s"
    )
    print(
        f"[{name}] latency: p50 {result.latency(50):.2f} s, p95 {result.latency(95):.2f} s, "
        f"max {result.latency(100):.2f} s"
    )
    if batch_mean is not None:
        print(f"[{name}] server mean batch size: {batch_mean:.1f}")
    print(f"[{name}] all answered: {'yes' if result.outcomes and not errors else 'no'}")


def report_open(result: Result, args: argparse.Namespace) -> None:
    outcomes = result.outcomes
    admitted = result.answered
    shed = [o for o in outcomes if o.status in (429, 503)]
    server_errors = [o for o in outcomes if o.status >= 500 and o.status != 503]
    other = len(outcomes) - len(admitted) - len(shed) - len(server_errors)
    first = [o.first_token_s for o in admitted if o.first_token_s is not None]
    print(
        f"open loop: {args.rate:g} arrivals/s for {args.seconds:g} s, max_tokens "
        f"{args.max_tokens}, serve.max_queue {args.max_queue}, serve.request_timeout_s "
        f"{args.request_timeout:g}"
    )
    print(
        f"arrivals: {len(outcomes)}, admitted: {len(admitted)}, shed: {len(shed)} "
        f"({sum(o.status == 429 for o in shed)} x 429, {sum(o.status == 503 for o in shed)} x "
        f"503, {sum(o.retry_after for o in shed)} with Retry-After), 5xx: {len(server_errors)}, "
        f"other failures: {other}"
    )
    print(
        f"admitted latency: p50 {result.latency(50):.2f} s, p95 {result.latency(95):.2f} s, "
        f"p99 {result.latency(99):.2f} s"
    )
    print(
        f"time to first token: p50 {_percentile(first, 50):.2f} s, "
        f"p95 {_percentile(first, 95):.2f} s"
    )
    print(f"admitted throughput: {len(admitted) / result.wall_s:.2f} requests/s")


def report_soak(result: Result) -> None:
    start, end = result.notes.get("rss_start_mb"), result.notes.get("rss_end_mb")
    if not start or not end:
        print("rss growth: unknown (no local server process to read)")
        return
    print(f"rss: {start:.0f} MB after the first answers, {end:.0f} MB at the end")
    print(f"rss growth: {100 * (end - start) / start:.1f}%")
    samples = [(t, mb) for t, mb in result.notes.get("rss_mb", []) if mb]
    if samples:
        print("rss by minute: " + ", ".join(f"{t / 60:.0f}m {mb:.0f}" for t, mb in samples[5::6]))
        # Growth over the second half: a leak keeps growing, a warming allocator levels off.
        half = next(mb for t, mb in samples if t >= samples[-1][0] / 2)
        print(f"rss growth over the second half: {100 * (end - half) / half:.1f}%")


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    if q >= 100 or len(ordered) == 1:
        return ordered[-1] if q >= 100 else ordered[0]
    return statistics.quantiles(ordered, n=100)[q - 1]


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
