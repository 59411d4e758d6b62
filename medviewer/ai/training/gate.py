"""The promotion gate: is a candidate version not worse than the active one on the frozen val set?

:func:`gate` compares two :func:`medviewer.ai.training.evaluate.evaluate` results (each with a
``version`` added) and returns the ``"gate"`` event object: ``{"metric", "margin", "active":
{"version", "value", "per_class", "n"}, "candidate": {...}, "passed", "reason"}``. The candidate
passes when ``candidate.value >= active.value - margin``. A candidate without a value (no
validation sample, NaN) never passes; an active version without a value cannot be compared, so
any candidate with a value passes. Pure python, no torch.
"""
from __future__ import annotations

import math
from typing import Any, Optional

__all__ = ["gate", "finite"]

_EPS = 1e-9  # float noise in metric rounding must not flip a tie


def finite(value: Any) -> Optional[float]:
    """``value`` as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _side(ev: dict, what: str) -> dict:
    if not isinstance(ev, dict):
        raise ValueError(f"gate: the {what} evaluation must be a dict, got {type(ev).__name__}")
    per = ev.get("per_class") or {}
    if not isinstance(per, dict):
        raise ValueError(f"gate: the {what} per_class must be a dict")
    out = {"version": ev.get("version"), "value": finite(ev.get("value")),
           "per_class": {str(k): finite(v) for k, v in per.items()}}
    if isinstance(ev.get("n"), int):
        out["n"] = ev["n"]
    return out


def gate(active_eval: dict, candidate_eval: dict, margin: float) -> dict:
    """Decide promotion (see module docstring); ValueError on a bad margin or when the two
    evaluations measure different metrics."""
    m = finite(margin)
    if m is None or m < 0:
        raise ValueError(f"gate: margin must be a finite number >= 0, got {margin!r}")
    metric_a = active_eval.get("metric") if isinstance(active_eval, dict) else None
    metric_c = candidate_eval.get("metric") if isinstance(candidate_eval, dict) else None
    if metric_a and metric_c and metric_a != metric_c:
        raise ValueError(f"gate: cannot compare {metric_c} (candidate) with {metric_a} (active)")
    active, cand = _side(active_eval, "active"), _side(candidate_eval, "candidate")
    metric = metric_c or metric_a or "metric"
    a, c = active["value"], cand["value"]
    if c is None:
        passed, reason = False, f"the candidate has no {metric} on the validation set"
    elif a is None:
        passed, reason = True, (f"the active version has no {metric} on the validation set; "
                                f"the candidate's is {c:.4f}")
    else:
        passed = c >= a - m - _EPS
        verb = "passes" if passed else "fails"
        reason = (f"candidate {metric} {c:.4f} vs active {a:.4f} (margin {m:g}): {verb}"
                  f" ({'+' if c >= a else ''}{c - a:.4f})")
    return {"metric": metric, "margin": m, "active": active, "candidate": cand,
            "passed": bool(passed), "reason": reason}
