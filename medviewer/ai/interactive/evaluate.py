"""Held-out click metrics of an interactive engine (for the model card and the benchmark):
the standard click protocol (:func:`medviewer.core.click_sim.run_protocol`) on every held-out
structure, each on the axial slice where it is largest.

The held-out set: the held-out structure classes in the training cases, and every structure of
the held-out cases (see :mod:`.train_data`), when its largest cross-section is at least
:data:`MIN_EVAL_MM2`."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import numpy as np

from medviewer.core.click_sim import MAX_CLICKS, noc, run_protocol
from medviewer.core.prompts import Point, Prompts

__all__ = ["MIN_EVAL_MM2", "evaluation_set", "evaluate", "summary", "engine_fn", "compare"]

MIN_EVAL_MM2 = 100.0


def evaluation_set(quick: bool = False) -> List[dict]:
    """Held-out (group, case, structure, image slice, reference slice, spacing) items."""
    from medviewer.ai.interactive.train_data import (HELD_OUT_CASES, HELD_OUT_CLASSES,
                                                     case_files, load_case)

    items = []
    for name, spec in case_files().items():
        case = load_case(name, spec)
        whole_case = name in HELD_OUT_CASES
        sy, sx = case.spacing_zyx[1:]
        chosen = [s for s in case.structures if whole_case or s in HELD_OUT_CLASSES]
        for s in sorted(chosen):
            mask = case.structures[s]
            area = mask.reshape(mask.shape[0], -1).sum(axis=1)
            z = int(np.argmax(area))
            if area[z] * sy * sx < MIN_EVAL_MM2:
                continue
            items.append({"group": "held-out case" if whole_case else "held-out class",
                          "case": name, "structure": s, "slice": z,
                          "image": case.image[z], "reference": mask[z], "spacing": (sy, sx)})
    if quick:
        seen, out = set(), []
        for it in items:
            if it["group"] not in seen or len(out) < 4:
                out.append(it)
                seen.add(it["group"])
        items = out[:4]
    return items


def engine_fn(engine) -> Callable:
    """``fn(image2d, spacing, clicks, prev) -> mask`` for an engine module with segment_2d."""

    def fn(image, spacing, clicks, prev):
        prompts = Prompts(points=tuple(Point((0,) + c.index, c.positive) for c in clicks))
        return engine.segment_2d(image, prompts, spacing, z=0, prev_mask=prev)

    return fn


def evaluate(fn: Callable, items: List[dict], max_clicks: int = MAX_CLICKS) -> List[dict]:
    """One row per item: NoC@85/90, Dice after 1/3/5 clicks, seconds per click."""
    rows = []
    for it in items:
        times: list = []

        def seg(clicks, prev, it=it):
            t0 = time.perf_counter()
            m = fn(it["image"], it["spacing"], clicks, prev)
            times.append(time.perf_counter() - t0)
            return m

        _clicks, dices = run_protocol(seg, it["reference"], it["spacing"], max_clicks)
        d = list(dices) + [dices[-1] if dices else 0.0] * max(0, 5 - len(dices))
        rows.append({"group": it["group"], "case": it["case"], "structure": it["structure"],
                     "slice": it["slice"], "noc85": noc(dices, 0.85, max_clicks),
                     "noc90": noc(dices, 0.90, max_clicks), "dice_1": round(d[0], 3),
                     "dice_3": round(d[2], 3), "dice_5": round(d[4], 3),
                     "seconds_per_click": round(float(np.mean(times)), 4) if times else None})
    return rows


def summary(rows: List[dict]) -> Dict[str, dict]:
    """Median/mean NoC and mean Dice per group and overall."""
    out = {}
    groups = sorted({r["group"] for r in rows}) + ["all"]
    for g in groups:
        rs = [r for r in rows if g == "all" or r["group"] == g]
        if not rs:
            continue
        out[g] = {"n": len(rs),
                  "median_noc85": statistics.median(r["noc85"] for r in rs),
                  "mean_noc85": round(statistics.mean(r["noc85"] for r in rs), 2),
                  "median_noc90": statistics.median(r["noc90"] for r in rs),
                  "mean_noc90": round(statistics.mean(r["noc90"] for r in rs), 2),
                  "mean_dice_1": round(statistics.mean(r["dice_1"] for r in rs), 3),
                  "mean_dice_3": round(statistics.mean(r["dice_3"] for r in rs), 3),
                  "mean_dice_5": round(statistics.mean(r["dice_5"] for r in rs), 3)}
    return out


def compare(rows_learned: List[dict], rows_classical: List[dict]) -> dict:
    """Clicks saved by the learned engine over the classical one (mean NoC@85)."""
    a = statistics.mean(r["noc85"] for r in rows_learned)
    b = statistics.mean(r["noc85"] for r in rows_classical)
    return {"mean_noc85_learned": round(a, 2), "mean_noc85_classical": round(b, 2),
            "fewer_clicks_pct": round(100.0 * (1 - a / b), 1) if b else None}

