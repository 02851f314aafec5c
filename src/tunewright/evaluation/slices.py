"""Metrics per slice of the eval set, and the confusion matrix of a classifier.

An overall "better" can hide a slice that got worse: one label the model stopped predicting,
one source file whose style it forgot, long prompts it now truncates. Each slice (examples
sharing a label, a source file, a prompt-length tertile, or any record field named in
`eval.slices`) is compared like the whole set, with a paired bootstrap interval and test, and
the p-values of all slices together are Holm-corrected: with a dozen slices, one would reach
p < 0.05 by chance alone about half the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunewright.config import Config
from tunewright.data.records import Record, prompt_messages
from tunewright.errors import TunewrightError

# The built-in dimensions; any other name in eval.slices is a (dotted) record field.
LABEL, SOURCE, PROMPT_LENGTH = "label", "source", "prompt_length"
BUILTIN = (LABEL, SOURCE, PROMPT_LENGTH)
# Slices with fewer examples are not tested: a paired test on 3 examples cannot reach
# significance after correction, and its interval says nothing.
MIN_SLICE_EXAMPLES = 5
MISSING_VALUE = "(missing)"
TERTILES = ("short", "medium", "long")
OTHER_LABEL = "(other)"  # a classifier answer that is none of the reference labels


def slice_results(
    records: list[Record],
    outputs: dict[str, list[str]],
    references: list[str],
    primary: str,
    text_metrics: list[str],
    config: Config,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """metrics.json's `slices` (on the primary metric, or the first text metric when the
    primary is scored from likelihoods) and, for classification, `confusion` per side over
    the reference labels and `labels` (a classifier head's)."""
    from tunewright.evaluation.metrics import METRICS

    found: dict[str, Any] = {}
    metric = primary if primary in METRICS else next(iter(text_metrics), None)
    if config.eval.slices and metric is not None:
        found["slices"] = compare_slices(records, outputs, references, metric, config)
    if records and all(r.get("task") == "classification" for r in records):
        found["confusion"] = {
            w: confusion_matrix(outputs[w], references, labels or ()) for w in outputs
        }
    return found


def compare_slices(
    records: Sequence[Record],
    outputs: dict[str, list[str]],
    references: list[str],
    metric: str,
    config: Config,
) -> dict[str, Any]:
    """Each slice of `eval.slices` compared on `metric`, with Holm-corrected verdicts.

    Returns {"metric", "correction", "rows": [...], "worse": ["dimension=value", ...],
    "too_small": count of slices under MIN_SLICE_EXAMPLES}. Each row is a Comparison dict plus
    `dimension`, `slice`, `n_examples` and `p_holm`; its verdict uses `p_holm`."""
    from tunewright.evaluation.compare import compare_metric
    from tunewright.evaluation.stats import holm, verdict

    groups = slice_groups(records, config.eval.slices)
    tested = [g for g in groups if len(g[2]) >= MIN_SLICE_EXAMPLES]
    rows = []
    for dimension, value, indices in tested:
        subset = {which: [outputs[which][i] for i in indices] for which in ("base", "tuned")}
        row = compare_metric(metric, subset, [references[i] for i in indices], config)
        rows.append({"dimension": dimension, "slice": value, "n_examples": len(indices), **row})
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
        row["verdict"] = verdict(
            row["ci_low"], row["ci_high"], adjusted, higher_is_better=row["higher_is_better"]
        )
    return {
        "metric": metric,
        "correction": "holm",
        "rows": rows,
        "worse": [f"{r['dimension']}={r['slice']}" for r in rows if r["verdict"] == "worse"],
        "too_small": len(groups) - len(tested),
        "min_examples": MIN_SLICE_EXAMPLES,
    }


def slice_groups(
    records: Sequence[Record], dimensions: Sequence[str]
) -> list[tuple[str, str, list[int]]]:
    """(dimension, value, example indices) for every value of every dimension that splits the
    records into two or more groups (one group is the whole set, already reported)."""
    groups = []
    for dimension in dimensions:
        values = _dimension_values(records, dimension)
        if values is None:
            continue
        by_value: dict[str, list[int]] = {}
        for i, value in enumerate(values):
            by_value.setdefault(value, []).append(i)
        if len(by_value) > 1:
            # tertiles in first-seen order would depend on the data; sort them by length
            key = _tertile_rank if dimension == PROMPT_LENGTH else None
            groups += [(dimension, v, by_value[v]) for v in sorted(by_value, key=key)]
    return groups


def confusion_matrix(
    predictions: Sequence[str], references: Sequence[str], known: Sequence[str] = ()
) -> dict[str, Any]:
    """Counts[reference label][predicted label] over the reference labels and the `known` ones
    (a classifier head's labels, some perhaps absent from the eval set), with one more column,
    OTHER_LABEL, for answers that are none of them (a generative classifier may answer
    anything)."""
    from tunewright.evaluation.metrics import normalize

    labels = sorted({normalize(r) for r in references} | {normalize(k) for k in known})
    columns = [*labels, OTHER_LABEL]
    counts = [[0] * len(columns) for _ in labels]
    for prediction, reference in zip(predictions, references, strict=True):
        predicted = normalize(prediction)
        column = labels.index(predicted) if predicted in labels else len(labels)
        counts[labels.index(normalize(reference))][column] += 1
    return {"labels": labels, "columns": columns, "counts": counts}


def _dimension_values(records: Sequence[Record], dimension: str) -> list[str] | None:
    """Each record's value on a dimension; None when the dimension does not apply (labels
    outside classification)."""
    if dimension == LABEL:
        if not all(r.get("task") == "classification" for r in records):
            return None
        return [str(r.get("label")) for r in records]
    if dimension == SOURCE:
        return [str(r["source"]["file"]) for r in records]
    if dimension == PROMPT_LENGTH:
        return _length_tertiles(records)
    values = [_field(r, dimension) for r in records]
    if all(v is None for v in values):
        fields = sorted({key for r in records for key in r})
        raise TunewrightError(
            f"eval.slices: no eval record has a field '{dimension}'",
            hint=f"Built-in slices: {', '.join(BUILTIN)}; record fields: {', '.join(fields)} "
            "(nested ones with dots, e.g. source.file).",
        )
    return [MISSING_VALUE if v is None else str(v) for v in values]


def _field(record: Record, path: str) -> Any:
    value: Any = record
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _tertile_rank(name: str) -> int:
    return TERTILES.index(name.split()[0])


def _length_tertiles(records: Sequence[Record]) -> list[str]:
    """short / medium / long by the prompt's length in characters (all turns before the
    answer), cut at the 1/3 and 2/3 quantiles; equal lengths share a tertile, so tertiles may
    be uneven or fewer than three."""
    import numpy as np

    lengths = [sum(len(m.get("content") or "") for m in prompt_messages(r)) for r in records]
    low, high = (int(q) for q in np.quantile(lengths, [1 / 3, 2 / 3]))
    names = (f"{TERTILES[0]} (≤{low} chars)", f"{TERTILES[1]} (≤{high} chars)")
    names += (f"{TERTILES[2]} (>{high} chars)",)
    return [names[0] if n <= low else names[1] if n <= high else names[2] for n in lengths]
