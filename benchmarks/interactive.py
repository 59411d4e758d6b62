"""Benchmark `interactive`: clicks to a mask with the standard click protocol (the next click at
the centre of the largest error region, positive for a missed region, negative for a false
one, up to 20 clicks), per engine, against a brush-only baseline; plus click latency on a
512² slice and the time of a 3D propagation over the 100-slice chest CT.

Structures: every TotalSegmentator organ with at least MIN_VOXELS voxels in the CT
(`example_ct_sm` + `example_seg`) and MR (`example_mr_sm` + `example_seg_mr`) reference cases,
each on the slice where it is largest. The classical engine learns nothing, so every structure
is held out for it; the learned engine is not built yet (it is reported as missing).
Brush baseline: brush dabs of BRUSH_MM radius a person would need at least to cover the
reference on that slice (area / dab area, rounded up).

3D (``--3d``): the 3D click protocol on the CT structures (first click on the largest slice,
propagated; each next click at the centre of the largest 3D error region, on any slice,
correcting the 3D result there): 3D NoC@85/NoC@90 and 3D Dice after 1 and 5 clicks per
structure, in ``structures_3d`` with ``median_noc85_3d``.

    .venv/bin/python benchmarks/interactive.py [--quick] [--3d]

Prints one JSON line: per structure NoC@85, NoC@90, Dice after 1, 3 and 5 clicks, and the
summary (median NoC, clicks vs brush dabs, p95 latency, 3D seconds) with the goals.
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


def latency_and_3d(quick: bool) -> dict:
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
        segment(vol, Prompts(points=(Point((z, int(yx[0]), int(yx[1])), True),)), z=z)
        times.append(time.perf_counter() - t0)
    lung = np.argwhere(vol.array[z] < -800)
    lung = lung[len(lung) // 2]
    t0 = time.perf_counter()
    mask = segment(vol, Prompts(points=(Point((z, int(lung[0]), int(lung[1])), True),)),
                   three_d=True, z=z)
    t3d = time.perf_counter() - t0
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    return {"click_p95_s_512": round(float(np.percentile(times, 95)), 4),
            "click_median_s_512": round(float(np.median(times)), 4),
            "propagation_3d_s": round(t3d, 3), "propagation_slices": int(len(zs)),
            "slices": int(vol.shape[0])}


def three_d_rows(quick: bool) -> list:
    """The 3D click protocol per CT structure (two with --quick, 10 clicks each then)."""
    from medviewer.services.interactive import simulate

    rows = []
    for modality, name, vol, ref in structures(quick, CASES[:1]):
        t0 = time.perf_counter()
        res = simulate(vol, ref, max_clicks=10 if quick else MAX_CLICKS, three_d=True,
                       engine="classical", stop_at=0.90)
        d = res.dices + [res.dices[-1]] * (5 - len(res.dices))
        rows.append({"case": modality, "structure": name, "noc85_3d": res.noc(0.85),
                     "noc90_3d": res.noc(0.90), "dice3d_1": round(d[0], 3),
                     "dice3d_5": round(d[4], 3), "dice3d_best": round(max(res.dices), 3),
                     "clicked_slices": len({c.voxel[0] for c in res.clicks}),
                     "seconds": round(time.perf_counter() - t0, 2)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two structures per case, fewer clicks")
    ap.add_argument("--3d", dest="three_d", action="store_true",
                    help="also the 3D click protocol on the CT structures")
    args = ap.parse_args()
    from medviewer.services.interactive import simulate

    rows = []
    for modality, name, vol, ref in structures(args.quick):
        res = simulate(vol, ref, max_clicks=MAX_CLICKS, engine="classical")
        z = res.z
        sy, sx = (float(s) for s in (vol.geometry.spacing[1], vol.geometry.spacing[0]))
        d = res.dices + [res.dices[-1]] * (5 - len(res.dices)) if res.dices else [0.0] * 5
        rows.append({"case": modality, "structure": name, "slice": z,
                     "noc85": res.noc(0.85), "noc90": res.noc(0.90),
                     "dice_1": round(d[0], 3), "dice_3": round(d[2], 3), "dice_5": round(d[4], 3),
                     "brush_dabs": _brush_dabs(ref[z], (sy, sx))})
    noc85 = [r["noc85"] for r in rows]
    brush = [r["brush_dabs"] for r in rows]
    out = {"benchmark": "interactive", "quick": args.quick, "engine": "classical",
           "learned_engine": "not built yet", "max_clicks": MAX_CLICKS, "structures": rows,
           "median_noc85": statistics.median(noc85), "median_noc90":
           statistics.median([r["noc90"] for r in rows]),
           "median_brush_dabs": statistics.median(brush),
           "clicks_vs_brush_ratio": round(statistics.median(noc85) / statistics.median(brush), 3)}
    if args.three_d:
        rows3 = three_d_rows(args.quick)
        out["structures_3d"] = rows3
        out["median_noc85_3d"] = statistics.median([r["noc85_3d"] for r in rows3])
        out["median_noc90_3d"] = statistics.median([r["noc90_3d"] for r in rows3])
    out.update(latency_and_3d(args.quick))
    out["goal_click_p95_le_0.3s"] = out["click_p95_s_512"] <= 0.3
    out["goal_3d_le_3s"] = out["propagation_3d_s"] <= 3.0
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
