"""Is a frozen validation set big enough to judge a model? Units counted, classes per unit.

A gate on one or two validation units measures noise, so a fine-tuning run is judged only when
its validation set holds at least ``min_units`` split units and every class of the model is
present in at least ``min_per_class`` of them (segmentation: foreground labels in the unit's
reference slices; classification: the unit's class). :func:`check_validation_set` says what is
missing in words a person can act on. :func:`manifest_unit_classes` reads the classes from a
manifest's validation entries (``target["classes"]`` written by the manifest builder, or the
classification ``target["class"]``). Pure Python.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Optional

DEFAULT_MIN_UNITS = 5
DEFAULT_MIN_PER_CLASS = 2

__all__ = ["DEFAULT_MIN_UNITS", "DEFAULT_MIN_PER_CLASS", "check_validation_set",
           "manifest_unit_classes", "judged_classes"]


def judged_classes(task: str, labels: Iterable[str]) -> list:
    """The classes the minimum applies to: every label but background (index 0) for
    segmentation, every class for classification."""
    labels = [str(x) for x in labels]
    return labels[1:] if task == "segmentation" else labels


def manifest_unit_classes(manifest) -> Optional[dict]:
    """unit -> set of class names in the manifest's validation entries; None when a
    segmentation entry does not record its classes (an older manifest: the trainer counts
    them from the label files instead)."""
    out: dict = {}
    for e in manifest.val_entries():
        target = e.target or {}
        if manifest.task == "classification":
            names = {str(target.get("class"))}
        elif isinstance(target.get("classes"), list):
            names = {str(c) for c in target["classes"]}
        else:
            return None
        out.setdefault(e.unit, set()).update(names)
    return out


def check_validation_set(unit_classes: Mapping[str, Iterable[str]], classes: Iterable[str],
                         min_units: int = DEFAULT_MIN_UNITS,
                         min_per_class: int = DEFAULT_MIN_PER_CLASS) -> dict:
    """``{"ok", "units", "min_units", "min_per_class", "per_class": {class: units},
    "missing": [sentences], "message"}`` for validation units and their classes."""
    if int(min_units) < 1 or int(min_per_class) < 0:
        raise ValueError(f"validation minimum must be >= 1 unit and >= 0 per class, got "
                         f"{min_units} / {min_per_class}")
    classes = [str(c) for c in classes]
    units = {str(u): {str(c) for c in cs} for u, cs in unit_classes.items()}
    per_class = {c: sum(c in cs for cs in units.values()) for c in classes}
    missing = []
    if len(units) < int(min_units):
        missing.append(f"{len(units)} validation unit{'s' if len(units) != 1 else ''}, "
                       f"at least {int(min_units)} needed ({int(min_units) - len(units)} more)")
    short = {c: n for c, n in per_class.items() if n < int(min_per_class)}
    if short:
        parts = ", ".join(f"{c} in {n}" for c, n in short.items())
        missing.append(f"classes in fewer than {int(min_per_class)} validation units: {parts}")
    ok = not missing
    message = ("validation set large enough" if ok else
               "not gated: validation set too small — " + "; ".join(missing) +
               ". Correct (or mark as validation) more cases that show these classes, or lower "
               "the minimum (--min-val-units / --min-val-per-class).")
    return {"ok": ok, "units": len(units), "min_units": int(min_units),
            "min_per_class": int(min_per_class), "per_class": per_class, "missing": missing,
            "message": message}
