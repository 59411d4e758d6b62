"""The promotion gate: is a candidate version not worse than the active one on the frozen val set?

:func:`gate` compares two :func:`medviewer.ai.training.evaluate.evaluate` results (each with a
``version`` added) and returns the ``"gate"`` event object: ``{"metric", "margin", "gated",
"active": {"version", "value", "per_class", "n", "ece", "fp_volume_ml"}, "candidate": {...},
"ci", "class_falls", "validation", "passed", "reason"}``.

The candidate passes when all of these hold:

- the validation set is big enough (:func:`medviewer.core.val_check.check_validation_set` on
  the evaluations' ``unit_classes``); otherwise the gate is not run at all (``gated`` False,
  reason "not gated: validation set too small …") and nothing is promoted;
- ``candidate.value >= active.value - margin`` (the headline metric); for a metric where lower
  is better (an evaluation with ``"lower_is_better": True``, e.g. the promptable model's mean
  number of clicks to Dice 0.85) ``candidate.value <= active.value + margin``;
- no class falls by more than the margin (``class_falls`` lists those that do).

It also reports, without gating on them, paired bootstrap 95 % intervals over validation units
of both headlines and of candidate - active (``ci``, :mod:`stats`), each side's expected
calibration error and, for segmentation, false-positive volume on slices without the organ. A
candidate without a value (no validation sample, NaN) never passes; an active version without a
value cannot be compared, so any candidate with a value passes the headline test.

:func:`first_gate` judges a new model's first version, whose active version is untrained (made
by ``models new``): there is nothing trained to be "not worse than", so it must *beat* the
trivial predictor (:func:`medviewer.ai.training.evaluate.trivial_evaluation`: the majority
class of the frozen validation set, or an all-background label map) by more than the margin,
on the same validation-size minimum; no per-class rule (the majority class's sensitivity of a
constant answer is 1.0 by construction). No torch.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from medviewer.core.val_check import (DEFAULT_MIN_PER_CLASS, DEFAULT_MIN_UNITS,
                                      check_validation_set)

__all__ = ["gate", "first_gate", "finite"]

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
    for key in ("ece", "fp_volume_ml", "auc"):
        if ev.get(key) is not None:
            out[key] = ev[key]
    return out


def _worse(c: float, a: float, margin: float, lower: bool) -> bool:
    """Is ``c`` worse than ``a`` by more than ``margin``?"""
    return c > a + margin + _EPS if lower else c < a - margin - _EPS


def _class_falls(active: dict, cand: dict, margin: float, lower: bool = False) -> list:
    falls = []
    for name, a in active["per_class"].items():
        c = cand["per_class"].get(name)
        if a is not None and c is not None and _worse(c, a, margin, lower):
            falls.append({"class": name, "active": a, "candidate": c, "change": round(c - a, 6)})
    return falls


def _bootstrap(active_eval: dict, candidate_eval: dict) -> Optional[dict]:
    from medviewer.ai.training.stats import paired_bootstrap

    ra, rc = active_eval.get("rows"), candidate_eval.get("rows")
    if ra is None or rc is None or active_eval.get("units") != candidate_eval.get("units"):
        return None
    return paired_bootstrap(ra, rc)


def gate(active_eval: dict, candidate_eval: dict, margin: float,
         min_units: int = DEFAULT_MIN_UNITS, min_per_class: int = DEFAULT_MIN_PER_CLASS) -> dict:
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
    lower = bool(active_eval.get("lower_is_better") or candidate_eval.get("lower_is_better"))
    out = {"metric": metric, "margin": m, "active": active, "candidate": cand,
           "validation": None, "ci": None, "class_falls": [], "gated": True}
    if lower:
        out["lower_is_better"] = True
    unit_classes = candidate_eval.get("unit_classes")
    if isinstance(unit_classes, dict):
        check = check_validation_set(unit_classes, list(cand["per_class"] or active["per_class"]),
                                     min_units, min_per_class)
        out["validation"] = check
        if not check["ok"]:
            return dict(out, gated=False, passed=False, reason=check["message"])
    out["ci"] = _bootstrap(active_eval, candidate_eval)
    a, c = active["value"], cand["value"]
    falls = out["class_falls"] = _class_falls(active, cand, m, lower)
    if c is None:
        passed, reason = False, f"the candidate has no {metric} on the validation set"
    elif a is None:
        passed, reason = True, (f"the active version has no {metric} on the validation set; "
                                f"the candidate's is {c:.4f}")
    else:
        passed = not _worse(c, a, m, lower)
        verb = "passes" if passed else "fails"
        reason = (f"candidate {metric} {c:.4f} vs active {a:.4f} (margin {m:g}"
                  f"{', lower is better' if lower else ''}): {verb}"
                  f" ({'+' if c >= a else ''}{c - a:.4f})")
    if falls:
        passed = False
        reason += "; fails per class: " + ", ".join(
            f"{f['class']} {f['change']:+.4f}" for f in falls) + f" (more than the margin {m:g})"
    diff = (out["ci"] or {}).get("difference")
    if diff:
        reason += f"; 95% CI of the change [{diff[0]:+.4f}, {diff[1]:+.4f}]"
    return dict(out, passed=bool(passed), reason=reason)


def first_gate(reference_eval: dict, candidate_eval: dict, margin: float,
               min_units: int = DEFAULT_MIN_UNITS,
               min_per_class: int = DEFAULT_MIN_PER_CLASS) -> dict:
    """The gate of a first version (see module docstring): the same event object as
    :func:`gate`, with ``first_version`` True and ``reference`` (what the trivial predictor
    is); ``active`` holds the trivial predictor's numbers."""
    m = finite(margin)
    if m is None or m < 0:
        raise ValueError(f"gate: margin must be a finite number >= 0, got {margin!r}")
    ref = dict(reference_eval)
    out = gate(dict(ref, per_class={}), candidate_eval, 0.0, min_units, min_per_class)
    out["active"]["per_class"] = _side(ref, "reference")["per_class"]  # shown, not gated on
    out.update(margin=m, first_version=True, reference=ref.get("reference") or {},
               class_falls=[])
    if not out["gated"]:
        return out
    a, c = out["active"]["value"], out["candidate"]["value"]
    what = (ref.get("reference") or {}).get("text", "the trivial predictor")
    metric = out["metric"]
    if c is None or a is None:
        passed = False
        reason = f"first version: no {metric} to compare on the validation set"
    else:
        passed = c > a + m + _EPS
        reason = (f"first version: candidate {metric} {c:.4f} vs {a:.4f} for {what}; it must "
                  f"beat that by more than the margin {m:g}: "
                  f"{'passes' if passed else 'fails'} ({'+' if c >= a else ''}{c - a:.4f})")
    diff = (out.get("ci") or {}).get("difference")
    if diff:
        reason += f"; 95% CI of the change [{diff[0]:+.4f}, {diff[1]:+.4f}]"
    return dict(out, passed=bool(passed), reason=reason)
