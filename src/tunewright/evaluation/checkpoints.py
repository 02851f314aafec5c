"""The checkpoint curve (`tunewright eval --checkpoints`): every kept checkpoint on the eval set.

The final weights are not always the best ones: past some step a model starts to overfit its
training set. Each complete checkpoint in `<run>/train/checkpoints/` answers the same held-out
prompts with the same decoding as the final weights; its primary metric and its loss on the
reference answers are reported with 95% bootstrap intervals, and the best point is marked.
Whether training past the best checkpoint hurt is a paired test of the final weights against
that checkpoint on the same examples. The best point is picked on the same examples, which
favours finding a gap, so only a significant drop is called a hurt.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewright.config import Config
from tunewright.data.records import Record, expected_answer, prompt_messages
from tunewright.runs import TRAIN, stage_dir

CHECKPOINTS = "checkpoints"
FINAL = "final"


def kept_checkpoints(config: Config) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint the Trainer finished writing, oldest first."""
    from tunewright.training.callbacks import COMPLETE_MARK

    folder = stage_dir(config, TRAIN) / CHECKPOINTS
    found = [
        (int(p.name.split("-")[1]), p)
        for p in folder.glob("checkpoint-*")
        if (p / COMPLETE_MARK).is_file()
    ]
    return sorted(found)


def checkpoint_curve(
    config: Config, records: list[Record], results: dict[str, Any], console: Console
) -> dict[str, Any]:
    """metrics.json's `checkpoints`: a point per kept checkpoint plus the final weights, the best
    one, and the final weights compared with it."""
    from tunewright.evaluation.compare import compare_metric
    from tunewright.evaluation.metrics import METRICS, higher_is_better
    from tunewright.models import load_tokenizer

    metric = _metric(results, METRICS)
    final_step = (results.get("train") or {}).get("steps")
    kept = [(s, p) for s, p in kept_checkpoints(config) if s != final_step]
    tokenizer = load_tokenizer(Path(results["models"]["tuned"]))
    references = [expected_answer(r) or "" for r in records]
    points, outputs = [], {}
    for step, folder in kept:
        console.print(f"[bold]eval[/bold]: checkpoint {folder.name}")
        model = _load_checkpoint(config, folder)
        outputs[folder.name] = _generate(config, model, tokenizer, records) if metric else []
        points.append(_point(config, step, folder.name, model, tokenizer, records, references))
        del model
    final_model = _load_checkpoint(config, Path(results["models"]["tuned"]))
    outputs[FINAL] = [e["tuned"] for e in results["examples"]]
    last = final_step if final_step is not None else max([s for s, _ in kept], default=0)
    points.append(_point(config, last, FINAL, final_model, tokenizer, records, references))
    for point in points:
        if metric:
            point.update(_value(metric, outputs[point["name"]], references, config))
    key, better_high = ("value", higher_is_better(metric)) if metric else ("loss", False)
    best = max(points, key=lambda p: (p[key] if better_high else -p[key], -p["step"]))
    versus = None
    if best["name"] != FINAL and metric:
        pair = {"base": outputs[best["name"]], "tuned": outputs[FINAL]}
        versus = compare_metric(metric, pair, references, config)
    curve = {
        "metric": metric or "loss",
        "higher_is_better": better_high,
        "points": points,
        "best": {"step": best["step"], "name": best["name"]},
        "final_vs_best": versus,
        "hurt": bool(versus and versus["verdict"] == "worse"),
    }
    curve["summary"] = curve_summary(curve)
    return curve


def curve_summary(curve: dict[str, Any]) -> str:
    """One sentence: which point is best and whether training past it hurt."""
    best, metric = curve["best"], curve["metric"]
    if best["name"] == FINAL:
        return (
            f"The final weights (step {best['step']}) score best on {metric} of "
            f"{len(curve['points'])} points: no sign that training went on too long."
        )
    versus = curve["final_vs_best"]
    lead = f"Best on {metric}: {best['name']} (step {best['step']})"
    if versus is None:
        return f"{lead}."
    change = (
        f"{versus['diff']:+.4g}, 95% CI {versus['ci_low']:+.4g} to {versus['ci_high']:+.4g}, "
        f"p = {versus['p_value']:.3g}"
    )
    if curve["hurt"]:
        return (
            f"{lead}; the final weights are significantly worse than it ({change}): training "
            f"past step {best['step']} hurt. Consider train.max_steps: {best['step']}."
        )
    return (
        f"{lead}, but the final weights are not significantly worse than it ({change}): "
        "training past it did not measurably hurt."
    )


def curve_png(curve: dict[str, Any]) -> str:
    """The curve as a base64 PNG: the metric with its intervals (and the loss on a second
    axis), the best point starred."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    points = curve["points"]
    steps = [p["step"] for p in points]
    key = "value" if "value" in points[0] else "loss"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    low = [p[key] - p[f"{key}_ci_low"] for p in points]
    high = [p[f"{key}_ci_high"] - p[key] for p in points]
    values = [p[key] for p in points]
    ax.errorbar(steps, values, yerr=[low, high], fmt="o-", capsize=3, label=curve["metric"])
    best = next(p for p in points if p["name"] == curve["best"]["name"])
    ax.plot([best["step"]], [best[key]], "*", markersize=16, color="#ff7f0e", label="best")
    if key == "value":
        loss_axis = ax.twinx()
        loss_axis.plot(steps, [p["loss"] for p in points], "s--", color="#d62728", alpha=0.6)
        loss_axis.set_ylabel("eval loss (dashed)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(curve["metric"])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _metric(results: dict[str, Any], text_metrics: tuple[str, ...]) -> str | None:
    """The primary metric when it is scored from text, else the first text metric, else None
    (the curve is then the loss alone)."""
    if results["primary_metric"] in text_metrics:
        return str(results["primary_metric"])
    return next((r["metric"] for r in results["metrics"] if r["metric"] in text_metrics), None)


def _load_checkpoint(config: Config, folder: Path) -> Any:
    from tunewright.models import load_causal_lm, resolve_model

    def load(path: Path) -> Any:
        return load_causal_lm(path, config.model.dtype, config.model.attn_implementation)

    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(load(resolve_model(config.model.name)), folder).eval()
    return load(folder).eval()


def _generate(config: Config, model: Any, tokenizer: Any, records: list[Record]) -> list[str]:
    from tunewright.generate import Decoding, generate

    decoding = Decoding(max_new_tokens=config.eval.max_new_tokens, seed=config.seed)
    prompts = [prompt_messages(r) for r in records]
    return generate(model, tokenizer, prompts, decoding, config.eval.batch_size)


def _point(
    config: Config,
    step: int,
    name: str,
    model: Any,
    tokenizer: Any,
    records: list[Record],
    references: list[str],
) -> dict[str, Any]:
    """The step, name and mean loss on the reference answers with its 95% interval."""
    from tunewright.evaluation.loss import example_losses, mean_loss
    from tunewright.evaluation.stats import paired_bootstrap

    conversations = [
        [*prompt_messages(r), {"role": "assistant", "content": ref}]
        for r, ref in zip(records, references, strict=True)
    ]
    pairs = example_losses(model, tokenizer, conversations, config.data.max_seq_len)
    loss, low, high = paired_bootstrap(
        len(pairs),
        lambda indices: 0.0,  # against zero: the interval of the loss itself
        lambda indices: mean_loss([pairs[i] for i in indices]),
        samples=config.eval.bootstrap_samples,
        seed=config.seed,
    )
    return {"step": step, "name": name, "loss": loss, "loss_ci_low": low, "loss_ci_high": high}


def _value(metric: str, outputs: list[str], references: list[str], config: Config) -> dict:
    """The metric and its 95% interval on these outputs."""
    from tunewright.evaluation.metrics import corpus_scorer
    from tunewright.evaluation.stats import paired_bootstrap

    scorer = corpus_scorer(metric, outputs, references)
    value, low, high = paired_bootstrap(
        len(references),
        lambda indices: 0.0,
        scorer,
        samples=config.eval.bootstrap_samples,
        seed=config.seed,
    )
    return {"value": value, "value_ci_low": low, "value_ci_high": high}
