"""The gate report of a fine-tuned version: report.md (table), report.png (chart), report.json.

:func:`write_report` writes three files into a version folder (atomically, each): a Markdown
page with the gate's verdict, the size of the frozen validation set (units, units per class),
the main metric with bootstrap 95 % intervals of each version and of the change, a table of
every class, active version vs candidate, with the change and whether it falls by more than
the margin, the calibration error and (segmentation) the false-positive volume on slices
without the organ; a grouped bar chart per class drawn with Pillow (no matplotlib), the main
metric's intervals as whiskers; and the same numbers as JSON. Classes missing on the
validation set show as "n/a". No torch.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from medviewer.ai.training.gate import finite
from medviewer.ai.training.report_text import details_markdown
from medviewer.core.atomic import atomic_path, atomic_write_text

__all__ = ["write_report", "report_rows", "draw_chart", "ACTIVE_RGB", "CANDIDATE_RGB"]

ACTIVE_RGB = (90, 120, 170)
CANDIDATE_RGB = (230, 140, 40)
_BG, _INK, _GRID = (255, 255, 255), (30, 30, 30), (225, 225, 225)


def report_rows(gate_dict: dict) -> list[dict]:
    """``[{"label", "active", "candidate", "delta", "main"}]``: the main metric first, then
    every class of either side (candidate's order first)."""
    act, cand = gate_dict.get("active", {}), gate_dict.get("candidate", {})
    rows = [_row(f"{gate_dict.get('metric', 'metric')} (main)", act.get("value"),
                 cand.get("value"), True)]
    pa, pc = act.get("per_class") or {}, cand.get("per_class") or {}
    for label in list(pc) + [k for k in pa if k not in pc]:
        rows.append(_row(str(label), pa.get(label), pc.get(label), False))
    return rows


def _row(label: str, a, c, main: bool) -> dict:
    a, c = finite(a), finite(c)
    delta = None if a is None or c is None else round(c - a, 6)
    return {"label": label, "active": a, "candidate": c, "delta": delta, "main": main}


def _f(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _d(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:+.4f}"


def _markdown(gate_dict: dict, rows: list, base_card, candidate_card) -> str:
    act, cand = gate_dict.get("active", {}), gate_dict.get("candidate", {})
    name = getattr(candidate_card, "name", None) or getattr(base_card, "name", "model")
    va, vc = act.get("version") or "?", cand.get("version") or "?"
    if gate_dict.get("gated", True) is False:
        verdict = "NOT GATED"
    else:
        verdict = "PASSED" if gate_dict.get("passed") else "FAILED"
    if gate_dict.get("first_version"):  # the active version is untrained: a trivial baseline
        what = (gate_dict.get("reference") or {}).get("text", "the trivial predictor")
        lines = [f"# {name}: first version {vc} vs the {va}", "",
                 f"The model's active version is untrained, so its first version must beat "
                 f"{what} on the frozen validation set by more than the margin.", ""]
    else:
        lines = [f"# {name}: candidate {vc} vs active {va}", ""]
    lines += [f"Gate on the frozen validation set: **{verdict}** — main metric "
              f"`{gate_dict.get('metric')}`, margin {gate_dict.get('margin')}.", ""]
    if gate_dict.get("reason"):
        lines += [str(gate_dict["reason"]), ""]
    n = cand.get("n", act.get("n"))
    if n is not None:
        lines += [f"Validation units: {n}.", ""]
    falls = {f["class"] for f in gate_dict.get("class_falls") or ()}
    lines += [f"| | active {va} | candidate {vc} | change | falls more than the margin |",
              "|---|---:|---:|---:|:---:|"]
    for r in rows:
        label = f"**{r['label']}**" if r["main"] else r["label"]
        flag = "" if r["main"] else ("**yes**" if r["label"] in falls else
                                     ("no" if r["delta"] is not None else "n/a"))
        lines.append(f"| {label} | {_f(r['active'])} | {_f(r['candidate'])} | {_d(r['delta'])} "
                     f"| {flag} |")
    lines += ["", "![per-class comparison](report.png)", ""]
    lines += details_markdown(gate_dict, va, vc)
    training = getattr(candidate_card, "training", None) or {}
    parent = getattr(candidate_card, "parent_version", None)
    facts = []
    if parent:
        facts.append(f"- fine-tuned from {name}:{parent}")
    if training.get("manifest_sha256"):
        facts.append(f"- training manifest sha256 `{training['manifest_sha256']}`")
    if training.get("best_epoch") is not None:
        facts.append(f"- best epoch {training['best_epoch']} of {training.get('epochs_run', '?')}")
    if facts:
        lines += facts + [""]
    return "\n".join(lines)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def draw_chart(rows: list, title: str, labels=("active", "candidate"), ci: Optional[dict] = None):
    """A grouped bar chart (PIL Image, RGB): per row one active and one candidate bar.

    The y axis runs from 0 to 1 when every value lies in [0, 1] (Dice, accuracy, sensitivity),
    else from 0 to the largest value. A missing value draws no bar, only "n/a". ``ci``
    (the gate's bootstrap intervals) draws whiskers on the main metric's bars."""
    from PIL import Image, ImageDraw

    values = [v for r in rows for v in (r["active"], r["candidate"]) if v is not None]
    top = 1.0 if all(0.0 <= v <= 1.0 for v in values) else max([1e-9] + values)
    group_w, bar_w = 120, 40
    left, right, top_pad, bottom = 60, 20, 70, 70
    width = left + right + group_w * max(1, len(rows))
    height = 420
    plot_h = height - top_pad - bottom
    img = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(img)
    small, big = _font(12), _font(15)
    draw.text((left, 12), title, fill=_INK, font=big)
    base_y = top_pad + plot_h
    for i in range(6):  # grid and y ticks
        frac = i / 5
        y = round(base_y - frac * plot_h)
        draw.line([(left, y), (width - right, y)], fill=_GRID)
        draw.text((8, y - 7), f"{frac * top:.2f}", fill=_INK, font=small)
    for k, (colour, name) in enumerate(zip((ACTIVE_RGB, CANDIDATE_RGB), labels)):
        x = width - right - 240 + k * 120  # legend, top right
        draw.rectangle([x, 40, x + 12, 52], fill=colour)
        draw.text((x + 18, 39), name, fill=_INK, font=small)
    for g, row in enumerate(rows):
        x0 = left + g * group_w + (group_w - 2 * bar_w) // 2
        for k, (key, colour) in enumerate((("active", ACTIVE_RGB), ("candidate", CANDIDATE_RGB))):
            v = row[key]
            bx = x0 + k * bar_w
            if v is None:
                draw.text((bx + 8, base_y - 16), "n/a", fill=_INK, font=small)
                continue
            h = round(min(max(v, 0.0), top) / top * plot_h)
            if h > 0:
                draw.rectangle([bx + 2, base_y - h, bx + bar_w - 3, base_y - 1], fill=colour)
            label_y = base_y - h
            interval = (ci or {}).get(key) if row.get("main") else None
            if interval and top > 0:
                ys = [round(base_y - min(max(float(q), 0.0), top) / top * plot_h)
                      for q in interval]
                cx = bx + bar_w // 2
                draw.line([(cx, ys[0]), (cx, ys[1])], fill=_INK, width=1)
                for y in ys:
                    draw.line([(cx - 6, y), (cx + 6, y)], fill=_INK, width=1)
                label_y = min(label_y, *ys)  # the value above the whisker, not across it
            draw.text((bx + 2, label_y - 15), f"{v:.2f}", fill=_INK, font=small)
        text = row["label"] if len(row["label"]) <= 18 else row["label"][:17] + "…"
        tw = draw.textlength(text, font=small)
        draw.text((left + g * group_w + max(2, (group_w - tw) / 2), base_y + 8), text,
                  fill=_INK, font=small)
    draw.line([(left, base_y), (width - right, base_y)], fill=_INK)
    draw.line([(left, top_pad), (left, base_y)], fill=_INK)
    return img


def write_report(folder, gate_dict: dict, base_card, candidate_card) -> Path:
    """Write report.md / report.png / report.json into ``folder``; returns report.md's path.

    ``base_card`` is the version the candidate was compared with (the active one),
    ``candidate_card`` the new version (cards or None; only names, versions and training facts
    are read)."""
    folder = Path(folder)
    rows = report_rows(gate_dict)
    act, cand = gate_dict.get("active", {}), gate_dict.get("candidate", {})
    name = getattr(candidate_card, "name", None) or getattr(base_card, "name", "model")
    va, vc = act.get("version") or "?", cand.get("version") or "?"
    img = draw_chart(rows, f"{name}: {gate_dict.get('metric')} per class, frozen validation set",
                     (f"active {va}", f"candidate {vc}"), gate_dict.get("ci"))
    with atomic_path(folder / "report.png", suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    doc = {"model": name, "metric": gate_dict.get("metric"), "margin": gate_dict.get("margin"),
           "passed": bool(gate_dict.get("passed")), "gated": gate_dict.get("gated", True),
           "reason": gate_dict.get("reason"), "ci": gate_dict.get("ci"),
           "class_falls": gate_dict.get("class_falls") or [],
           "validation": gate_dict.get("validation"),
           "active": {"version": va, "ref": getattr(base_card, "ref", None),
                      "value": finite(act.get("value")), "ece": act.get("ece"),
                      "fp_volume_ml": act.get("fp_volume_ml")},
           "candidate": {"version": vc, "ref": getattr(candidate_card, "ref", None),
                         "parent_version": getattr(candidate_card, "parent_version", None),
                         "value": finite(cand.get("value")), "ece": cand.get("ece"),
                         "fp_volume_ml": cand.get("fp_volume_ml")},
           "rows": rows, "gate": gate_dict,
           "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(folder / "report.json", json.dumps(doc, indent=1) + "\n")
    md = folder / "report.md"
    atomic_write_text(md, _markdown(gate_dict, rows, base_card, candidate_card))
    return md
