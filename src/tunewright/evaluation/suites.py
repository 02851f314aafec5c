"""Multiple-choice benchmark suites scored by log-likelihood (`eval.suites`), the way
lm-evaluation-harness scores them: no text is generated, so answer length, truncation and
phrasing cannot move the score.

Each question is rendered as `Question: …\\nAnswer:` and each choice as its continuation
` <choice>`; the model's summed log-probability of the continuation's tokens, divided by the
continuation's length in UTF-8 bytes (lm-eval's `acc_norm`, so a long choice is not penalised
for having more tokens), picks its answer. Base and tuned answer the same questions; their
accuracies are compared with McNemar's test and a paired bootstrap interval, like every
right/wrong metric.

A suite file is JSONL, one question per line: {"question": str, "choices": [str, ...],
"answer": index | choice text}; or an lm-eval task YAML over local data files
(`lm_eval_task.py`), whose own context template and target delimiter replace ours.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tunewright.config import Config
from tunewright.errors import TunewrightError

# `builtin` in eval.suites: 293 project-written general questions (geography, science, language,
# common sense, arithmetic), four choices each; the embedded smollm2-135m-instruct gets 79% of
# them right (chance 25%), so a drop after fine-tuning can show.
BUILTIN = "builtin"
BUILTIN_PATH = Path(__file__).parent / "suite_data" / "builtin.jsonl"


def suite_path(config: Config, name: str) -> Path:
    return BUILTIN_PATH if name == BUILTIN else config.resolve(name)


def load_suite(path: Path) -> list[dict[str, Any]]:
    """The questions of a suite file (JSONL, or an lm-eval task YAML), each with `answer` as an
    index; every problem at once, each named by file and line."""
    if not path.is_file():
        raise TunewrightError(f"eval.suites: {path} does not exist")
    if path.suffix in (".yaml", ".yml"):
        from tunewright.evaluation.lm_eval_task import load_task

        return load_task(path)
    questions, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            questions.append(_question(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{path}:{number}: {exc}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise TunewrightError(
            f"eval.suites: {len(problems)} unreadable questions{more}:\n  "
            + "\n  ".join(problems[:5]),
            hint='Each line: {"question": "...", "choices": ["...", "..."], "answer": 0}',
        )
    if not questions:
        raise TunewrightError(f"eval.suites: {path} holds no questions")
    return questions


def _question(row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    question, choices, answer = row["question"], row["choices"], row["answer"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be non-empty text")
    if not (
        isinstance(choices, list)
        and len(choices) >= 2
        and all(isinstance(c, str) and c.strip() for c in choices)
    ):
        raise ValueError("choices must be a list of at least two non-empty texts")
    if isinstance(answer, str):
        if answer not in choices:
            raise ValueError(f"answer {answer!r} is not one of the choices")
        answer = choices.index(answer)
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ValueError(f"answer must be a choice index below {len(choices)} or a choice's text")
    return {"question": question, "choices": choices, "answer": answer}


def context_text(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def choose(model: Any, tokenizer: Any, questions: list[dict[str, Any]]) -> list[int]:
    """The choice the model finds most likely (per byte) for each question."""
    return [
        max(range(len(scores)), key=scores.__getitem__)
        for scores in choice_scores(model, tokenizer, questions)
    ]


def choice_scores(
    model: Any, tokenizer: Any, questions: list[dict[str, Any]], batch_rows: int = 32
) -> list[list[float]]:
    """Each choice's summed log-probability per UTF-8 byte. Every (question, choice) pair is a
    row; rows are sorted by length and scored `batch_rows` at a time, left-padded so every
    continuation ends at the last position, and the vocabulary projection runs only over the
    positions that predict a continuation token (`logits_to_keep`): scoring every position of
    a 49k-token vocabulary was most of the time."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows: list[tuple[int, int, list[int], int]] = []  # question, choice, tokens, continuation
    for q_index, item in enumerate(questions):
        text = item.get("context") or context_text(item["question"])
        delimiter = item.get("delimiter", " ")
        context = tokenizer(text, add_special_tokens=False).input_ids
        for c_index, choice in enumerate(item["choices"]):
            cont = tokenizer(f"{delimiter}{choice}", add_special_tokens=False).input_ids
            rows.append((q_index, c_index, context + cont, len(cont)))
    found = [[0.0] * len(item["choices"]) for item in questions]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][2]))
    for first in range(0, len(order), batch_rows):
        batch = [rows[i] for i in order[first : first + batch_rows]]
        width = max(len(tokens) for _, _, tokens, _ in batch)
        keep = max(n for *_, n in batch) + 1
        ids = torch.tensor([[pad] * (width - len(t)) + t for _, _, t, _ in batch], device=device)
        mask = torch.tensor(
            [[0] * (width - len(t)) + [1] * len(t) for _, _, t, _ in batch], device=device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # The kept positions as an index tensor, not a count: a count slices a strided view,
        # and the head's matmul on a strided 3-D input copied its weight once per row (a
        # 64 x 576 x 49k copy per batch, most of the time); indexing hands it a contiguous copy.
        window = torch.arange(width - keep, width, device=device)
        with torch.no_grad():
            logits = model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=window
            ).logits
            logprobs = torch.log_softmax(logits.float(), -1)  # [rows, keep, vocab]
        for row, (q_index, c_index, tokens, n) in enumerate(batch):
            # the last n tokens are the continuation; token t is predicted at t - 1, and the
            # kept window's last position predicts nothing
            targets = torch.tensor(tokens[-n:], device=device)
            picked = logprobs[row, keep - 1 - n : keep - 1].gather(-1, targets[:, None])
            item = questions[q_index]
            continuation = item.get("delimiter", " ") + item["choices"][c_index]
            found[q_index][c_index] = picked.sum().item() / len(continuation.encode())
    return found


def compare_suites(models: Any, config: Config, console: Any = None) -> list[dict[str, Any]]:
    """One entry per suite: its name, size, chance level and the accuracy comparison row."""
    from tunewright.evaluation.stats import compare

    entries = []
    for name in config.eval.suites:
        path = suite_path(config, name)
        questions = load_suite(path)
        started = time.perf_counter()
        correct = {}
        for which in ("base", "tuned"):
            picks = models.run(which, lambda model, q=questions: choose(model, models.tokenizer, q))
            correct[which] = [
                float(p == q["answer"]) for p, q in zip(picks, questions, strict=True)
            ]
        n = len(questions)
        if console is not None:
            seconds = time.perf_counter() - started
            console.print(f"suite {name}: {n} questions, base and tuned scored in {seconds:.1f} s")
        row = compare(
            f"{path.stem} accuracy",
            correct["base"],
            correct["tuned"],
            sum(correct["base"]) / n,
            sum(correct["tuned"]) / n,
            binary=True,
            samples=config.eval.bootstrap_samples,
            seed=config.seed,
        )
        entries.append(
            {
                "suite": name,
                "n_questions": n,
                "chance": sum(1 / len(q["choices"]) for q in questions) / n,
                "metrics": [{**row.as_dict(), "higher_is_better": True}],
            }
        )
    return entries
