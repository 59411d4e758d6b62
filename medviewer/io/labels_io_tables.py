"""Label tables at the I/O edge: normalising the accepted forms, and the dict we return.

The table dict that ``read_labelmap`` / ``read_seg`` return (and that every writer accepts) is
``{"labels": [{"value": int, "name": str, "color": [r, g, b], "visible": bool,
"locked": bool}, ...]}``, ordered by value. Writers also accept a ``LabelTable``-like object
(``.labels`` mapping value -> object with ``name``/``color``), ``{"labels": {value: {...}}}``,
a plain ``{value: name}`` mapping (keys may be strings), or None.
"""
from __future__ import annotations

from typing import Iterable, Optional

# distinct default colours for labels without one (cycled)
_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)


def default_color(value: int) -> tuple:
    return _PALETTE[(int(value) - 1) % len(_PALETTE)]


def _rgb(color, value: int) -> tuple:
    if color is None:
        return default_color(value)
    vals = [float(c) for c in color][:3]
    if len(vals) != 3:
        return default_color(value)
    return tuple(int(round(min(255.0, max(0.0, c)))) for c in vals)


def _entry(value, item) -> dict:
    v = int(value)
    if isinstance(item, str):
        name, color, visible, locked = item, None, True, False
    elif isinstance(item, dict):
        name = item.get("name", f"Label {v}")
        color = item.get("color", item.get("rgb"))
        visible, locked = bool(item.get("visible", True)), bool(item.get("locked", False))
    else:  # a Label-like object
        name = getattr(item, "name", f"Label {v}")
        color = getattr(item, "color", None)
        visible = bool(getattr(item, "visible", True))
        locked = bool(getattr(item, "locked", False))
    return {"value": v, "name": str(name), "color": list(_rgb(color, v)),
            "visible": visible, "locked": locked}


def table_entries(table) -> dict:
    """{value: entry dict} for any accepted table form (empty for None); value 0 dropped."""
    if table is None:
        return {}
    labels = getattr(table, "labels", None)
    if labels is None and isinstance(table, dict):
        labels = table.get("labels", table)
    if labels is None and hasattr(table, "to_dict"):
        return table_entries(table.to_dict())
    out: dict = {}
    if isinstance(labels, dict):
        items: Iterable = labels.items()
    elif isinstance(labels, (list, tuple)):
        items = []
        for item in labels:
            value = item.get("value") if isinstance(item, dict) else getattr(item, "value", None)
            if value is not None:
                items.append((value, item))
    else:
        raise TypeError(f"cannot read a label table from {type(table).__name__}")
    for value, item in items:
        try:
            v = int(value)
        except (TypeError, ValueError):
            continue  # e.g. other keys of a dict
        if v > 0:
            out[v] = _entry(v, item)
    return out


def make_table(entries: dict) -> Optional[dict]:
    """The returned table dict from {value: entry}; None when empty."""
    if not entries:
        return None
    return {"labels": [entries[v] for v in sorted(entries)]}


def entry_for(entries: dict, value: int) -> dict:
    """The entry of ``value``, or a default one ("Label N", palette colour)."""
    return entries.get(int(value)) or _entry(int(value), None)
