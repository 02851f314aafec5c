"""A pairwise LLM judge (`eval.judge`): base and tuned answers compared by a stronger model.

Open-ended answers have no reference that exact match or chrF can judge well, so a judge model
reads the prompt, both answers (and the reference, when there is one) under a rubric, and says
which is better. Judges favour whichever answer comes first (or second) more often than chance,
so every example is asked in both orders and a verdict counts only when both agree; otherwise
the example is a tie. How often the two orders agree is itself reported: a judge that agrees
with itself on few examples is close to a coin.

Per example the tuned side scores 1 (win), 0.5 (tie) or 0 (loss), and base the complement, so
the mean difference is win rate − loss rate; its paired bootstrap interval and the sign test
(ties dropped) give the verdict as for every other metric.

The endpoint is any OpenAI-compatible server, reached with the official `openai` client. Replies
are cached in `<run>/eval/judge_cache.jsonl`, keyed by the judge model and the exact messages,
so a rerun (or a run cut short) pays only for what it has not asked yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config.schema import JudgeSection
from tunewright.errors import TunewrightError
from tunewright.files import append_jsonl

METRIC = "judge_win_rate"
JUDGE_MAX_TOKENS = 512  # room for a short justification before the verdict line
CHARS_PER_TOKEN = 4  # the usual rough rate for English; the estimate is printed as approximate
CONSISTENCY_WARNING = 0.7  # below this share of agreeing orders, the report warns
PARALLEL_REQUESTS = 8
ORDERS = ("base_first", "tuned_first")

SYSTEM = (
    "You are an impartial judge. You compare two answers to the same request and decide "
    "which one is better under the rubric. The order of the answers says nothing about "
    "their quality, and length is not quality."
)
RUBRICS = {
    "classification": "The better answer gives the correct label, exactly and with nothing else.",
    "summarization": "The better summary is faithful to the source (no invented facts), covers "
    "its main points and is concise.",
    "code": "The better answer is correct code that does what was asked, complete and runnable, "
    "without needless text.",
}
DEFAULT_RUBRIC = (
    "The better answer follows the request, is correct and helpful, and says no more than "
    "needed. When a reference answer is given, agreeing with it in substance counts most."
)
_VERDICT = re.compile(r"verdict\W*(a|b|tie)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    index: int
    order: str
    messages: list[dict[str, str]]
    key: str  # the cache key: judge model, reply limit and the exact messages


def _request(index: int, order: str, messages: list[dict[str, str]], model: str) -> Request:
    payload = json.dumps([model, JUDGE_MAX_TOKENS, messages], ensure_ascii=False)
    key = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    return Request(index, order, messages, key)


def judge_outputs(
    judge: JudgeSection,
    task: str,
    prompts: list[list[dict[str, Any]]],
    references: list[str],
    outputs: dict[str, list[str]],
    cache_path: Path,
    console: Console,
    *,
    samples: int,
    seed: int,
) -> dict[str, Any]:
    """Ask the judge about every example in both orders; the `judge` entry of metrics.json.

    Returns the counts, the order-consistency rate, tokens used, and `metrics`: one Comparison
    row (METRIC), ready for the metric table."""
    rubric = rubric_for(judge, task)
    requests = [
        _request(
            i,
            order,
            judge_messages(prompts[i], references[i], outputs, i, order, rubric),
            judge.model,
        )
        for i in range(len(prompts))
        for order in ORDERS
    ]
    cache = read_cache(cache_path)
    missing = [r for r in requests if r.key not in cache]
    console.print(f"[bold]judge[/bold]: {estimate_line(judge, requests, missing)}")
    if missing:
        _ask(judge, missing, cache, cache_path)
    verdicts = {(r.index, r.order): parse_verdict(cache[r.key]["reply"]) for r in requests}
    return summarise(judge, rubric, verdicts, len(prompts), requests, cache, samples, seed)


def rubric_for(judge: JudgeSection, task: str) -> str:
    return judge.rubric if judge.rubric != "auto" else RUBRICS.get(task, DEFAULT_RUBRIC)


def judge_messages(
    prompt: list[dict[str, Any]],
    reference: str,
    outputs: dict[str, list[str]],
    i: int,
    order: str,
    rubric: str,
) -> list[dict[str, str]]:
    """The judge's conversation for one example in one order (A first, then B)."""
    first, second = ("base", "tuned") if order == "base_first" else ("tuned", "base")
    parts = [f"[Request]\n{_prompt_text(prompt)}"]
    if reference.strip():
        parts.append(f"[Reference answer]\n{reference}")
    parts += [f"[Answer A]\n{outputs[first][i]}", f"[Answer B]\n{outputs[second][i]}"]
    parts.append(
        f"[Rubric]\n{rubric}\n\nCompare answers A and B under the rubric. Explain in at most "
        'three sentences, then end with exactly one line: "Verdict: A", "Verdict: B" or '
        '"Verdict: tie".'
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def _prompt_text(prompt: list[dict[str, Any]]) -> str:
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return str(prompt[0]["content"])
    return "\n\n".join(f"({m['role']}) {m.get('content') or ''}" for m in prompt)


def parse_verdict(reply: str) -> str | None:
    """ "A", "B" or "tie" from the last `Verdict: …` in the reply; None when there is none."""
    found = _VERDICT.findall(reply or "")
    if not found:
        return None
    last = found[-1].lower()
    return "tie" if last == "tie" else last.upper()


def preferred(order: str, verdict: str | None) -> str | None:
    """Which side ("base", "tuned", "tie") a verdict in `order` prefers; None if unparsed."""
    if verdict is None or verdict == "tie":
        return verdict
    a, b = ("base", "tuned") if order == "base_first" else ("tuned", "base")
    return a if verdict == "A" else b


def estimate_line(judge: JudgeSection, requests: list[Request], missing: list[Request]) -> str:
    """Requests, cached ones, estimated tokens to send and, with a price, the most it costs."""
    sent = sum(len(m["content"]) for r in missing for m in r.messages) // CHARS_PER_TOKEN
    most_out = len(missing) * JUDGE_MAX_TOKENS
    line = (
        f"{len(requests)} requests to {judge.model} ({len(requests) - len(missing)} cached); "
        f"about {sent:,} prompt tokens + at most {most_out:,} reply tokens"
    )
    if judge.price_per_1k_tokens is not None:
        cost = (sent + most_out) / 1000 * judge.price_per_1k_tokens
        line += f", at most {cost:,.4f} at {judge.price_per_1k_tokens} per 1k tokens"
    return line


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """key -> {"reply", "tokens"}; a torn last line (a run killed mid-write) is ignored."""
    cache: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return cache
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "key" in row and "reply" in row:
            cache[row["key"]] = row
    return cache


def summarise(
    judge: JudgeSection,
    rubric: str,
    verdicts: dict[tuple[int, str], str | None],
    n: int,
    requests: list[Request],
    cache: dict[str, dict[str, Any]],
    samples: int,
    seed: int,
) -> dict[str, Any]:
    from tunewright.evaluation.stats import (
        Comparison,
        paired_bootstrap_means,
        sign_test,
        verdict,
    )

    outcomes, agreed, unparsed = [], 0, 0
    for i in range(n):
        sides = [preferred(order, verdicts[(i, order)]) for order in ORDERS]
        unparsed += sides.count(None)
        both = sides[0] is not None and sides[0] == sides[1]
        agreed += both
        outcomes.append(sides[0] if both else "tie")
    tuned = [{"tuned": 1.0, "tie": 0.5, "base": 0.0}[o] for o in outcomes]
    base = [1.0 - t for t in tuned]
    diff, low, high = paired_bootstrap_means(base, tuned, samples=samples, seed=seed)
    p_value = sign_test(base, tuned)
    row = Comparison(
        metric=METRIC,
        base=sum(base) / n,
        tuned=sum(tuned) / n,
        diff=diff,
        ci_low=low,
        ci_high=high,
        test="sign",
        p_value=p_value,
        verdict=verdict(low, high, p_value),
    )
    return {
        "model": judge.model,
        "rubric": rubric,
        "n_examples": n,
        "wins": outcomes.count("tuned"),
        "ties": outcomes.count("tie"),
        "losses": outcomes.count("base"),
        "consistency": agreed / n,
        "unparsed_replies": unparsed,
        "tokens": sum(int(cache[r.key].get("tokens") or 0) for r in requests),
        "metrics": [{**row.as_dict(), "higher_is_better": True}],
    }


def consistency_warning(judged: dict[str, Any]) -> str | None:
    if judged["consistency"] >= CONSISTENCY_WARNING:
        return None
    return (
        f"The judge gave the same verdict in both answer orders on only "
        f"{judged['consistency']:.0%} of examples (below {CONSISTENCY_WARNING:.0%}): its "
        "verdicts are close to chance; use a stronger judge or a sharper rubric."
    )


def check_judge(judge: JudgeSection) -> None:
    """Before any generation: the API key variable is set and the client is installed."""
    _api_key(judge)
    try:
        import openai  # noqa: F401
    except ImportError:
        raise TunewrightError(
            "eval.judge needs the openai package", hint="pip install 'tunewright[openai]'"
        ) from None


def _api_key(judge: JudgeSection) -> str:
    key = os.environ.get(judge.api_key_env, "").strip()
    if not key:
        raise TunewrightError(
            f"eval.judge.api_key_env: {judge.api_key_env} is not set",
            hint=f"export {judge.api_key_env}=... (read from the environment only, never saved; "
            "a local server that wants no key accepts any value)",
        )
    return key


def _ask(
    judge: JudgeSection,
    requests: list[Request],
    cache: dict[str, dict[str, Any]],
    cache_path: Path,
) -> None:
    """Send `requests`, a few at a time, adding each reply to the cache file as it comes, so an
    interrupted run keeps what it paid for (append_jsonl never leaves a torn line)."""
    import openai

    key = _api_key(judge)
    client = openai.OpenAI(api_key=key, base_url=judge.base_url, max_retries=3)
    lock = threading.Lock()

    def ask(request: Request) -> None:
        try:
            response = client.chat.completions.create(
                model=judge.model,
                messages=request.messages,  # type: ignore[arg-type]
                temperature=0,
                max_tokens=JUDGE_MAX_TOKENS,
            )
        except openai.OpenAIError as exc:
            message = str(exc).replace(key, "<redacted>")
            raise TunewrightError(
                f"eval.judge: {judge.base_url} refused a request: {message}",
                hint="Check eval.judge.base_url, eval.judge.model and the API key; replies so "
                "far are cached.",
            ) from None
        usage = response.usage
        row = {
            "key": request.key,
            "reply": response.choices[0].message.content or "",
            "tokens": usage.total_tokens if usage else None,
        }
        with lock:
            append_jsonl(cache_path, [row])
            cache[request.key] = row

    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(PARALLEL_REQUESTS) as pool:
        futures = [pool.submit(ask, request) for request in requests]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # one refusal (a wrong key, an unknown model) would repeat for every request left
            pool.shutdown(cancel_futures=True)
            raise
