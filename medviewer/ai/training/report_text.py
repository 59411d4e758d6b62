"""The gate report's sections beyond the per-class table: validation size, bootstrap intervals,
calibration and false-positive volume, as Markdown lines (see :mod:`report`). No torch."""
from __future__ import annotations

from typing import Optional

__all__ = ["details_markdown"]


def _f(v, digits: int = 4) -> str:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return f"{v:.{digits}f}" if ok else "n/a"


def _interval(iv: Optional[list], signed: bool = False) -> str:
    if not iv:
        return "n/a"
    fmt = "{:+.4f}" if signed else "{:.4f}"
    return f"[{fmt.format(iv[0])}, {fmt.format(iv[1])}]"


def _validation(check: Optional[dict]) -> list:
    if not check:
        return ["## Validation set", "", "Size not checked (the evaluations carry no units).", ""]
    per = ", ".join(f"{c} {n}" for c, n in check.get("per_class", {}).items())
    verdict = "large enough" if check.get("ok") else "**too small: not gated**"
    lines = ["## Validation set", "",
             f"{check.get('units')} frozen validation unit(s) — {verdict} (minimum "
             f"{check.get('min_units')} units, each class in at least "
             f"{check.get('min_per_class')}). Labels: only slices and cases a person corrected "
             f"or confirmed.", "", f"Units per class: {per or 'n/a'}.", ""]
    for m in check.get("missing") or ():
        lines.append(f"- missing: {m}")
    return lines + ([""] if check.get("missing") else [])


def _ci(gate_dict: dict, va: str, vc: str) -> list:
    ci = gate_dict.get("ci")
    if not ci:
        return []
    act, cand = gate_dict.get("active", {}), gate_dict.get("candidate", {})
    metric = gate_dict.get("metric", "metric")
    diff = None
    if act.get("value") is not None and cand.get("value") is not None:
        diff = cand["value"] - act["value"]
    return [f"## {metric}: bootstrap 95 % intervals", "",
            f"Resampling the {ci.get('units')} validation units with replacement "
            f"({ci.get('resamples')} times, the same draw for both versions):", "",
            "| | value | 95 % interval |", "|---|---:|---:|",
            f"| active {va} | {_f(act.get('value'))} | {_interval(ci.get('active'))} |",
            f"| candidate {vc} | {_f(cand.get('value'))} | {_interval(ci.get('candidate'))} |",
            f"| change (candidate - active) | {'n/a' if diff is None else f'{diff:+.4f}'} | "
            f"{_interval(ci.get('difference'), True)} |", ""]


def _calibration(gate_dict: dict, va: str, vc: str) -> list:
    act, cand = gate_dict.get("active", {}), gate_dict.get("candidate", {})
    if act.get("ece") is None and cand.get("ece") is None:
        return []
    where = ("voxels where either the prediction or the reference is an organ"
             if gate_dict.get("metric") == "mean_dice" else "validation images")
    return ["## Calibration", "",
            f"Expected calibration error (15 bins, top-class probability, over the {where}; "
            f"lower is better): active {va} {_f(act.get('ece'))}, candidate {vc} "
            f"{_f(cand.get('ece'))}.", ""]


def _fp_volume(gate_dict: dict, va: str, vc: str) -> list:
    fa = (gate_dict.get("active") or {}).get("fp_volume_ml")
    fc = (gate_dict.get("candidate") or {}).get("fp_volume_ml")
    if not fa and not fc:
        return []
    fa, fc = fa or {}, fc or {}
    names = list((fc.get("per_class") or {})) or list((fa.get("per_class") or {}))
    slices = fc.get("slices") or fa.get("slices") or {}
    lines = ["## False positives on slices without the organ", "",
             "Millilitres predicted as an organ on validation slices whose reference has none "
             "of it (lower is better):", "",
             f"| organ | slices without it | active {va} ml | candidate {vc} ml |",
             "|---|---:|---:|---:|"]
    for name in names:
        lines.append(f"| {name} | {slices.get(name, 0)} | "
                     f"{_f((fa.get('per_class') or {}).get(name), 2)} | "
                     f"{_f((fc.get('per_class') or {}).get(name), 2)} |")
    lines.append(f"| **all organs** | | {_f(fa.get('total'), 2)} | {_f(fc.get('total'), 2)} |")
    return lines + [""]


def details_markdown(gate_dict: dict, va: str, vc: str) -> list:
    """Markdown lines: validation size, intervals, calibration, false-positive volume."""
    return (_validation(gate_dict.get("validation")) + _ci(gate_dict, va, vc)
            + _calibration(gate_dict, va, vc) + _fp_volume(gate_dict, va, vc))
