"""Load test for `tunewright serve`: N concurrent chat clients for T seconds.

    python bench/serve_load.py [--model smollm2-135m-instruct] [--clients 32] [--seconds 30]
                               [--max-tokens 16] [--batch-size 16] [--url URL] [--api-key KEY]

Without --url it starts the server itself on 127.0.0.1 (in a separate process, so the clients do
not compete with it for the GIL) and stops it at the end. Each client sends short chat requests
back to back until T seconds have passed, then waits for its last answer. Prints requests/s,
latency percentiles, completion tokens/s, the server's mean batch size, errors, and ends with
`all answered: yes|no`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class Outcome:
    latency_s: float
    status: int  # 0: no HTTP answer (timeout, connection error)
    completion_tokens: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16, help="server's batch size")
    parser.add_argument("--url", help="target a running server instead, e.g. http://host:8000")
    parser.add_argument("--api-key", default="", help="for a running server that needs one")
    args = parser.parse_args()

    server = None
    url = args.url
    if url is None:
        log_path = Path(tempfile.mkdtemp(prefix="serve-load-")) / "requests.jsonl"
        server, url = start_server(args.model, args.batch_size, log_path)
        print(f"server log: {log_path}")
    try:
        outcomes, wall_s = asyncio.run(run_clients(url.rstrip("/"), args))
        report(outcomes, wall_s, args, server_batch_mean(url, args.api_key))
    finally:
        if server is not None:
            server.terminate()
            server.join(30)


def start_server(
    model: str, batch_size: int, log_path: Path
) -> tuple[multiprocessing.Process, str]:
    with socket.socket() as probe:  # a free port; released just before the server binds it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(model, batch_size, port, log_path), daemon=True
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # the first use of an embedded model converts it
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise SystemExit("the server exited during start-up; see its output above")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the server did not answer /health within 300 s")


def _serve(model: str, batch_size: int, port: int, log_path: Path) -> None:
    from tunewright.serving.app import ServeSettings
    from tunewright.serving.stage import serve, target_from_args

    target = target_from_args(model)
    serve(target, ServeSettings(batch_size=batch_size), "127.0.0.1", port, log_path)


async def run_clients(url: str, args: argparse.Namespace) -> tuple[list[Outcome], float]:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_S
    ) as client:
        model = (await client.get("/v1/models")).json()["data"][0]["id"]
        outcomes: list[Outcome] = []
        started = time.perf_counter()
        deadline = started + args.seconds
        await asyncio.gather(
            *(
                one_client(client, model, index, deadline, args.max_tokens, outcomes)
                for index in range(args.clients)
            )
        )
        return outcomes, time.perf_counter() - started


async def one_client(
    client: httpx.AsyncClient,
    model: str,
    index: int,
    deadline: float,
    max_tokens: int,
    outcomes: list[Outcome],
) -> None:
    sent = 0
    while time.perf_counter() < deadline:
        question = QUESTIONS[(index + sent) % len(QUESTIONS)]
        body = {
            "model": model,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": max_tokens,
        }
        started = time.perf_counter()
        try:
            response = await client.post("/v1/chat/completions", json=body)
            tokens = response.json()["usage"]["completion_tokens"] if response.is_success else 0
            status = response.status_code
        except (httpx.HTTPError, ValueError, KeyError):
            status, tokens = 0, 0
        outcomes.append(Outcome(time.perf_counter() - started, status, tokens))
        sent += 1


def server_batch_mean(url: str, api_key: str) -> float | None:
    """Mean requests per generation batch, from the server's /metrics."""
    try:
        text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("tunewright_batch_size_sum", "tunewright_batch_size_count"):
            values[name] = float(value)
    count = values.get("tunewright_batch_size_count")
    return values["tunewright_batch_size_sum"] / count if count else None


def report(
    outcomes: list[Outcome], wall_s: float, args: argparse.Namespace, batch_mean: float | None
) -> None:
    answered = [o for o in outcomes if o.status == 200]
    errors = len(outcomes) - len(answered)
    latencies = sorted(o.latency_s for o in answered) or [float("nan")]
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    tokens = sum(o.completion_tokens for o in answered)
    print(
        f"clients: {args.clients}, seconds: {args.seconds:g}, max_tokens: {args.max_tokens}, "
        f"wall: {wall_s:.1f} s (includes waiting for the last answers)"
    )
    print(f"requests: {len(outcomes)} sent, {len(answered)} answered, {errors} errors")
    print(f"throughput: {len(answered) / wall_s:.2f} requests/s, {tokens / wall_s:.1f} tokens/s")
    print(
        f"latency: p50 {quantiles[49]:.2f} s, p95 {quantiles[94]:.2f} s, max {latencies[-1]:.2f} s"
    )
    if batch_mean is not None:
        print(f"server mean batch size: {batch_mean:.1f}")
    print(f"all answered: {'yes' if outcomes and not errors else 'no'}")


if __name__ == "__main__":
    main()
