"""The eval gate (`eval.gate`): conditions under which `tunewright eval` fails, for CI.

`eval.require_improvement`, the gate's first form, is an alias of `eval.gate.improvement`:
either key turns on the same check.
"""

from __future__ import annotations

from typing import Any

from tunewright.config import Config


def gate_checks(config: Config, results: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's `gate`: each check that is on, whether it passed, and the failures as
    messages naming the key that asked for them."""
    gate = config.eval.gate
    checks: dict[str, bool] = {}
    failures: list[str] = []
    if gate.improvement or config.eval.require_improvement:
        key = "eval.gate.improvement" if gate.improvement else "eval.require_improvement"
        checks["improvement"] = results["verdict"] == "better"
        if not checks["improvement"]:
            failures.append(
                f"{key}: {results['primary_metric']} is '{results['verdict']}', "
                "not significantly better"
            )
    if gate.no_worse_slice:
        worse = (results.get("slices") or {}).get("worse") or []
        checks["no_worse_slice"] = not worse
        if worse:
            failures.append(
                f"eval.gate.no_worse_slice: significantly worse (Holm-corrected) on "
                f"{', '.join(worse)}"
            )
    if gate.no_worse_suite:
        worse = [
            row["metric"]
            for suite in results.get("suites") or []
            for row in suite["metrics"]
            if row["verdict"] == "worse"
        ]
        checks["no_worse_suite"] = not worse
        if worse:
            failures.append(f"eval.gate.no_worse_suite: significantly worse on {', '.join(worse)}")
    return {"checks": checks, "passed": not failures, "failures": failures}
