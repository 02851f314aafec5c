"""The model card (`README.md`) written beside exported weights.

Everything in it is read back from the run folder, never from memory: the training manifest
(method, hyperparameters, losses), the data report (`data/validation.json`), the evaluation
(`eval/metrics.json`, only when it evaluated the weights being exported), the merge parity
record, and the resolved config exactly as saved in `<run>/config.yaml` (secrets already
redacted there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunewright import __version__
from tunewright.config import Config
from tunewright.runs import read_manifest

Lines = list[str]


def model_card(
    config: Config,
    *,
    trained: dict[str, str],
    dtype: str,
    merge: dict[str, Any] | None,
    where: str,
) -> str:
    """The card for weights exported from the trained files `trained` (path -> sha256 of the
    adapter or full model); `where` is the repo id or folder the usage example loads."""
    run_dir = config.run_dir
    train = read_manifest(run_dir / "train") or {}
    method = train.get("config", {}).get("train", {}).get("method", config.train.method)
    sections = [
        _front_matter(config, method),
        _title(config, method, dtype, merge),
        _usage(where),
        _training(config, train),
        _data(run_dir),
        _evaluation(run_dir, trained),
        _merge(merge),
        _config_block(run_dir),
    ]
    return "\n".join(line for section in sections for line in [*section, ""]).rstrip() + "\n"


def _front_matter(config: Config, method: str) -> Lines:
    """Hub metadata; `base_model` only when the base is a hub model the hub can link to."""
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation"]
    hub_id = _hub_id(config.model.name)
    if hub_id:
        lines.append(f"base_model: {hub_id}")
    lines += ["tags:", "- tunewright", f"- {method}", "---"]
    return lines


def _hub_id(name: str) -> str | None:
    from tunewright.models import EMBEDDED, looks_like_hub_id

    if name in EMBEDDED:
        return EMBEDDED[name].hub_id
    return name if looks_like_hub_id(name) and not Path(name).expanduser().exists() else None


def _title(config: Config, method: str, dtype: str, merge: dict[str, Any] | None) -> Lines:
    how = "merged into the base weights" if merge else "all weights trained"
    return [
        f"# {config.name}",
        "",
        f"`{config.model.name}` fine-tuned with {method} ({how}) by tunewright {__version__}, "
        f"exported as {dtype} safetensors. The tokenizer carries the chat template used in "
        "training; `generation_config.json` stops at its end-of-turn token.",
    ]


def _usage(where: str) -> Lines:
    return [
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
        f'model = AutoModelForCausalLM.from_pretrained("{where}")',
        'messages = [{"role": "user", "content": "Hello!"}]',
        "inputs = tokenizer.apply_chat_template(",
        '    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True',
        ")",
        "output = model.generate(**inputs, max_new_tokens=128)",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], '
        "skip_special_tokens=True))",
        "```",
    ]


def _training(config: Config, train: dict[str, Any]) -> Lines:
    section = train.get("config", {}).get("train") or config.model_dump(mode="json")["train"]
    hyper = train.get("hyperparameters", {})
    metrics = train.get("metrics", {})
    rows = [
        ("base model", f"`{config.model.name}`"),
        ("method", _method_text(section)),
        ("epochs / max steps", f"{hyper.get('epochs', '?')} / {section.get('max_steps') or '-'}"),
        ("optimizer steps", metrics.get("steps")),
        (
            "batch",
            f"{hyper.get('batch_size', '?')} x {hyper.get('grad_accum', '?')} accumulation = "
            f"{hyper.get('global_batch', '?')} examples per step",
        ),
        (
            "learning rate",
            f"{hyper.get('learning_rate', '?')}, {section.get('lr_scheduler')} schedule, warmup "
            f"ratio {section.get('warmup_ratio')}, weight decay {section.get('weight_decay')}",
        ),
        ("precision", section.get("precision")),
        ("trainable parameters", _trainable_text(train)),
        ("train loss", _pair(metrics.get("first_loss"), metrics.get("final_loss"))),
        ("eval loss", _num(metrics.get("eval_loss"))),
        ("seed", train.get("seed", config.seed)),
    ]
    return ["## Training", "", *_table(("", ""), rows)]


def _method_text(train: dict[str, Any]) -> str:
    method, lora = train.get("method"), train.get("lora") or {}
    if method in ("lora", "qlora", "dora"):
        targets = lora.get("target_modules")
        targets = ", ".join(targets) if isinstance(targets, list) else targets
        extra = ", rank-stabilised" if lora.get("use_rslora") else ""
        base = " on a 4-bit NF4 base" if method == "qlora" else ""
        return (
            f"{method}{base}: r {lora.get('r')}, alpha {lora.get('alpha')}, dropout "
            f"{lora.get('dropout')}, target {targets}{extra}"
        )
    if method in ("prefix", "prompt"):
        return f"{method} tuning, {train.get('num_virtual_tokens')} virtual tokens"
    return str(method)


def _trainable_text(train: dict[str, Any]) -> str:
    trainable, total = train.get("trainable_parameters"), train.get("total_parameters")
    if not trainable or not total:
        return "-"
    return f"{trainable:,} of {total:,} ({trainable / total:.2%})"


def _data(run_dir: Path) -> Lines:
    path = run_dir / "data" / "validation.json"
    if not path.is_file():
        return ["## Data", "", "No data report in the run folder."]
    report = json.loads(path.read_text(encoding="utf-8"))
    rows, tokens = report.get("rows", {}), report.get("tokens", {})
    files = ", ".join(
        f"`{Path(f['file']).name}` ({f['rows']} rows)" for f in report.get("files", [])
    )
    return [
        "## Data",
        "",
        f"Task {report.get('task')}: {rows.get('total')} rows read from {files or '-'}; "
        f"{rows.get('train')} for training, {rows.get('eval')} held out for evaluation, "
        f"{rows.get('rejected')} rejected by the data checks. Tokens per example: mean "
        f"{tokens.get('mean')}, max {tokens.get('max')} ({tokens.get('truncated', 0)} over "
        f"max_seq_len {tokens.get('max_seq_len')}).",
    ]


def _evaluation(run_dir: Path, trained: dict[str, str]) -> Lines:
    from tunewright.evaluation.report import format_ci, format_diff, format_p, format_value

    lines = ["## Evaluation", ""]
    path = run_dir / "eval" / "metrics.json"
    if not path.is_file():
        return [*lines, "Not evaluated: run `tunewright eval CONFIG` before exporting."]
    if not _evaluated(run_dir, trained):
        return [
            *lines,
            "The evaluation in the run folder is of an earlier training run; rerun "
            "`tunewright eval CONFIG` before exporting.",
        ]
    results = json.loads(path.read_text(encoding="utf-8"))
    rows = [
        (
            m["metric"],
            format_value(m["metric"], m.get("base")),
            format_value(m["metric"], m.get("tuned")),
            f"{format_diff(m['metric'], m.get('diff'))} "
            f"({format_ci(m['metric'], m.get('ci_low'), m.get('ci_high'))})",
            format_p(m.get("p_value")),
            m.get("verdict"),
        )
        for m in results.get("metrics", [])
    ]
    head = ("metric", "base", "tuned", "difference (95% CI)", "p", "verdict")
    return [
        *lines,
        f"Against the base model on {results.get('n_examples')} held-out examples, greedy "
        f"decoding. Verdict on {results.get('primary_metric')}: **{results.get('verdict')}**.",
        "",
        *_table(head, rows),
    ]


def _evaluated(run_dir: Path, trained: dict[str, str]) -> bool:
    """Whether the eval stage's recorded inputs include the current trained weights."""
    manifest = read_manifest(run_dir / "eval")
    if manifest is None:
        return False
    inputs = manifest.get("inputs", {})
    return all(inputs.get(path) == digest for path, digest in trained.items())


def _merge(merge: dict[str, Any] | None) -> Lines:
    if not merge:
        return []
    parity = merge["parity"]
    rows = [
        (
            c["against"],
            f"{c['max_logit_diff']:.2e}",
            c["tolerance_rule"],
            f"{c['greedy_same']}/{c['probes']}" + ("" if c["greedy_required"] else " (reported)"),
            "pass" if c["passed"] else "FAIL",
        )
        for c in parity["checks"]
    ]
    head = ("merged model vs", "max logit diff", "tolerance", "same greedy replies", "result")
    return [
        "## Merge check",
        "",
        f"The adapter was merged into the base weights, loaded as {merge['base_loaded_as']}. "
        f"{parity['probes']} probe prompts ({parity['probe_source']}) were run "
        f"through the adapter model and the merged model: logits over the prompt tokens and "
        f"{parity['max_new_tokens']} greedy tokens.",
        "",
        *_table(head, rows),
    ]


def _config_block(run_dir: Path) -> Lines:
    path = run_dir / "config.yaml"
    text = path.read_text(encoding="utf-8").rstrip() if path.is_file() else "# not found"
    return [
        "## Config",
        "",
        "The resolved tunewright config of this run:",
        "",
        "```yaml",
        text,
        "```",
    ]


def _table(head: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Lines:
    def cells(values: tuple[Any, ...]) -> str:
        return (
            "| "
            + " | ".join(str("-" if v is None else v).replace("|", "\\|") for v in values)
            + " |"
        )

    return [cells(head), "|" + "---|" * len(head), *(cells(r) for r in rows)]


def _pair(first: Any, last: Any) -> str:
    return f"{_num(first)} -> {_num(last)}"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"
