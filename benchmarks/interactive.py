"""Benchmark `interactive`: clicks to a mask with the standard click protocol (the next click at
the centre of the largest error region, positive for a missed region, negative for a false
one, up to 20 clicks), for the learned and the classical engine and a brush-only baseline; plus
click latency on a 512² slice and a 3D propagation over the 100-slice chest CT, per engine.

Held-out set (``medviewer.ai.interactive.evaluate.evaluation_set``, the same function that
writes the model card's metrics): the structure classes held out of training (spleen, left
kidney, gallbladder, aorta, portal/splenic vein, L3, left hip, left gluteus medius, left
iliopsoas, duodenum, heart) in every case, and every structure of the held-out cases
(TotalSegmentator's 512² DICOM CT, pyradiomics brain2 and breast1), each on the axial slice
where it is largest (at least 100 mm²). Every click goes through the engine's segment_2d with
the previous result, as the app's prompt tool does.
Brush baseline: brush dabs of BRUSH_MM radius a person would need at least to cover the
reference on that slice (area / dab area, rounded up).

3D (``--3d``): the 3D click protocol (``services.interactive.simulate(three_d=True)``: first
click on the largest slice, propagated; each next click at the centre of the largest 3D error
region, on any slice, correcting the 3D result there) on the TotalSegmentator CT structures of
the held-out classes, per engine: 3D NoC@85/NoC@90 and 3D Dice after 1 and 5 clicks.

    .venv/bin/python benchmarks/interactive.py [--quick] [--3d]

Prints one JSON line: per structure and engine NoC@85, NoC@90, Dice after 1, 3 and 5 clicks;
the summary per engine and group; the learned engine's share of clicks saved; p95 latency and
3D seconds per engine; and the goals.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, REPO, SHARED_DATA, emit  # noqa: E402

sys.path.insert(0, str(REPO))

REF = SHARED_DATA / "totalseg" / "tests" / "reference_files"
CASES = (("ct", "example_ct_sm.nii.gz", "example_seg.nii.gz", "totalsegmentator_total_ct.csv"),
         ("mr", "example_mr_sm.nii.gz", "example_seg_mr.nii.gz", "totalsegmentator_total_mr.csv"))
MIN_VOXELS = 1000
MAX_CLICKS = 20
BRUSH_MM = 5.0


def _names(csv_name: str) -> dict:
    out = {}
    for line in (REPO / "resources" / "labels" / csv_name).read_text().splitlines():
        if line and not line.startswith("#") and not line.startswith("value"):
            v, name = line.split(",", 1)
            out[int(v)] = name.split(",")[0]
    return out


def _brush_dabs(ref2d: np.ndarray, spacing_yx) -> int:
    area = float(ref2d.sum()) * spacing_yx[0] * spacing_yx[1]
    return max(1, math.ceil(area / (math.pi * BRUSH_MM ** 2)))


def structures(quick: bool, cases=CASES):
    from medviewer.services.interactive import load_volume, reference_mask

    for modality, image, seg, csv_name in cases:
        vol = load_volume(str(REF / image))
        labels, counts = np.unique(_labels(str(REF / seg), vol.geometry), return_counts=True)
        names = _names(csv_name)
        chosen = [int(v) for v, c in zip(labels, counts) if v and c >= MIN_VOXELS]
        for value in (chosen[:2] if quick else chosen):
            ref = reference_mask(str(REF / seg), vol.geometry, value)
            yield modality, names.get(value, f"label {value}"), vol, ref


def _labels(seg_path: str, geometry) -> np.ndarray:
    from medviewer.services.annotations import read_label_file

    labels, _table, _warnings = read_label_file(seg_path, geometry)
    return np.asarray(labels)


def latency_and_3d(quick: bool, engine: str) -> dict:
    """p95 seconds per click on a 512² chest-CT slice, and one 3D propagation from a lung
    click through the 100 slices."""
    from medviewer.core.prompts import Point, Prompts
    from medviewer.services.interactive import load_volume, segment

    vol = load_volume(str(CHEST_CT))
    z = vol.shape[0] // 2
    rng = np.random.default_rng(0)
    body = np.argwhere(vol.array[z] > -500)
    times = []
    for yx in body[rng.choice(len(body), 5 if quick else 20, replace=False)]:
        t0 = time.perf_counter()
        segment(vol, Prompts(points=(Point((z, int(yx[0]), int(yx[1])), True),)), z=z,
                engine=engine)
        times.append(time.perf_counter() - t0)
    lung = np.argwhere(vol.array[z] < -800)
    lung = lung[len(lung) // 2]
    t0 = time.perf_counter()
    mask = segment(vol, Prompts(points=(Point((z, int(lung[0]), int(lung[1])), True),)),
                   three_d=True, z=z, engine=engine)
    t3d = time.perf_counter() - t0
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    return {"click_p95_s_512": round(float(np.percentile(times, 95)), 4),
            "click_median_s_512": round(float(np.median(times)), 4),
            "propagation_3d_s": round(t3d, 3), "propagation_slices": int(len(zs)),
            "slices": int(vol.shape[0])}


def three_d_rows(quick: bool, engine: str) -> list:
    """The 3D click protocol per held-out-class CT structure (two with --quick, 10 clicks)."""
    from medviewer.ai.interactive.train_data import HELD_OUT_CLASSES
    from medviewer.services.interactive import simulate

    rows = []
    chosen = [(m, n, v, r) for m, n, v, r in structures(False, CASES[:1])
              if n in HELD_OUT_CLASSES]
    for modality, name, vol, ref in (chosen[:2] if quick else chosen):
        t0 = time.perf_counter()
        res = simulate(vol, ref, max_clicks=10 if quick else MAX_CLICKS, three_d=True,
                       engine=engine, stop_at=0.90)
        d = res.dices + [res.dices[-1]] * (5 - len(res.dices))
        rows.append({"case": modality, "structure": name, "noc85_3d": res.noc(0.85),
                     "noc90_3d": res.noc(0.90), "dice3d_1": round(d[0], 3),
                     "dice3d_5": round(d[4], 3), "dice3d_best": round(max(res.dices), 3),
                     "clicked_slices": len({c.voxel[0] for c in res.clicks}),
                     "seconds": round(time.perf_counter() - t0, 2)})
    return rows


def held_out_rows(quick: bool, engines) -> tuple:
    from medviewer.ai.interactive.evaluate import engine_fn, evaluate, evaluation_set, summary
    from medviewer.services.interactive import _engine

    items = evaluation_set(quick)
    per_engine = {e: evaluate(engine_fn(_engine(e)), items, MAX_CLICKS) for e in engines}
    rows = []
    for i, it in enumerate(items):
        row = {"group": it["group"], "case": it["case"], "structure": it["structure"],
               "slice": it["slice"], "brush_dabs": _brush_dabs(it["reference"], it["spacing"])}
        for e in engines:
            r = per_engine[e][i]
            row[e] = {k: r[k] for k in ("noc85", "noc90", "dice_1", "dice_3", "dice_5",
                                        "seconds_per_click")}
        rows.append(row)
    return rows, {e: summary(per_engine[e]) for e in engines}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="four structures, fewer clicks")
    ap.add_argument("--3d", dest="three_d", action="store_true",
                    help="also the 3D click protocol on the held-out CT structures")
    args = ap.parse_args()
    from medviewer.services.interactive import available_engines

    avail = available_engines()
    engines = [e for e in ("learned", "classical") if avail[e] is None]
    rows, summ = held_out_rows(args.quick, engines)
    brush = [r["brush_dabs"] for r in rows]
    out = {"benchmark": "interactive", "quick": args.quick, "engines": engines,
           "learned_engine": avail["learned"] or "available", "max_clicks": MAX_CLICKS,
           "structures": rows, "summary": summ,
           "median_brush_dabs": statistics.median(brush)}
    for e in engines:
        n85 = [r[e]["noc85"] for r in rows]
        out[f"median_noc85_{e}"] = statistics.median(n85)
        out[f"mean_noc85_{e}"] = round(statistics.mean(n85), 2)
        out[f"median_noc90_{e}"] = statistics.median(r[e]["noc90"] for r in rows)
        out[f"clicks_vs_brush_ratio_{e}"] = round(statistics.median(n85) / statistics.median(
            brush), 3)
    if "learned" in engines:
        out["fewer_clicks_than_classical_pct"] = round(
            100 * (1 - out["mean_noc85_learned"] / out["mean_noc85_classical"]), 1)
        held_class = summ["learned"].get("held-out class", {})
        out["goal_median_noc85_heldout_le_5"] = (
            out["median_noc85_learned"] <= 5 and held_class.get("median_noc85", 99) <= 5)
        out["goal_30pct_fewer_clicks"] = out["fewer_clicks_than_classical_pct"] >= 30
    if args.three_d:
        for e in engines:
            rows3 = three_d_rows(args.quick, e)
            out[f"structures_3d_{e}"] = rows3
            out[f"median_noc85_3d_{e}"] = statistics.median([r["noc85_3d"] for r in rows3])
            out[f"median_noc90_3d_{e}"] = statistics.median([r["noc90_3d"] for r in rows3])
    for e in engines:
        lat = latency_and_3d(args.quick, e)
        out.update({f"{k}_{e}": v for k, v in lat.items()})
        out[f"goal_click_p95_le_0.3s_{e}"] = lat["click_p95_s_512"] <= 0.3
        out[f"goal_3d_le_3s_{e}"] = lat["propagation_3d_s"] <= 3.0
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
