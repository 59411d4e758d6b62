"""Benchmark `load`: our DICOM loader vs SimpleITK's ImageSeriesReader vs a plain pydicom loop.

Inputs: the real chest CT (100 x 512 x 512) and a generated 512 x 512 x 600 series made from its
slices. Each method runs in its own fresh interpreter (file cache warmed first), so its time and
its peak extra memory (peak RSS minus RSS after imports) are its own.
Goals: ours no slower than the plain pydicom loop, >= 2x faster than SimpleITK, peak extra
memory <= 1.3x the volume's bytes. Usage: python benchmarks/load.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, CHEST_CT, emit, run_child  # noqa: E402

CHILD = r'''
import json, sys, time, glob, os
method, folder = sys.argv[1], sys.argv[2]
from _common import rss_bytes, peak_rss_bytes
import numpy as np
files = sorted(glob.glob(os.path.join(folder, "*.dcm")))
if method == "ours":
    from medviewer.io.discover import scan_paths
    from medviewer.io.load import load_series
elif method == "simpleitk":
    import SimpleITK as sitk
else:
    import pydicom
base = rss_bytes()
t0 = time.perf_counter()
if method == "ours":
    cat = scan_paths([folder])
    vol = load_series(cat.series[0])
    arr = vol.array
elif method == "simpleitk":
    r = sitk.ImageSeriesReader()
    r.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))
    img = r.Execute()
    arr = sitk.GetArrayViewFromImage(img)
else:
    arr = np.stack([pydicom.dcmread(f).pixel_array for f in files])
dt = time.perf_counter() - t0
print(json.dumps({"s": dt, "peak_extra": peak_rss_bytes() - base, "nbytes": int(arr.nbytes),
                  "dtype": str(arr.dtype), "shape": list(arr.shape)}))
'''


def make_series(n_slices: int) -> Path:
    """A 512x512xN int16 CT series built from the real chest CT slices (cached on disk)."""
    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    out = CACHE / f"ct_{n_slices}"
    if out.is_dir() and len(list(out.glob("*.dcm"))) == n_slices:
        return out
    out.mkdir(parents=True, exist_ok=True)
    src = sorted(CHEST_CT.glob("*.dcm"))
    templates = [pydicom.dcmread(f) for f in src]
    templates.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    series_uid = generate_uid()
    z0 = float(templates[0].ImagePositionPatient[2])
    for i in range(n_slices):
        ds = templates[i % len(templates)].copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1], z0 + 1.25 * i]
        ds.SliceLocation = z0 + 1.25 * i
        ds.save_as(out / f"{i:04d}.dcm", enforce_file_format=True)
    return out


def bench(folder: Path, repeats: int) -> dict:
    for f in folder.glob("*.dcm"):  # warm the file cache
        f.read_bytes()
    res = {}
    for method in ("ours", "pydicom_loop", "simpleitk"):
        runs = [run_child(CHILD, method, str(folder)) for _ in range(repeats)]
        best = min(runs, key=lambda r: r["s"])
        res[method] = {"s": round(best["s"], 4), "peak_extra_ratio": round(
            min(r["peak_extra"] for r in runs) / best["nbytes"], 3), "dtype": best["dtype"],
            "shape": best["shape"]}
    res["ours_vs_pydicom_loop"] = round(res["pydicom_loop"]["s"] / res["ours"]["s"], 3)
    res["ours_vs_simpleitk"] = round(res["simpleitk"]["s"] / res["ours"]["s"], 3)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="150 generated slices, 1 repeat")
    a = ap.parse_args()
    n = 150 if a.quick else 600
    repeats = 1 if a.quick else 3
    out = {"benchmark": "load", "quick": a.quick}
    out["chest_ct"] = bench(CHEST_CT, repeats)
    print("chest CT:", out["chest_ct"], file=sys.stderr)
    out[f"generated_{n}"] = bench(make_series(n), repeats)
    print(f"generated {n}:", out[f"generated_{n}"], file=sys.stderr)
    big = out[f"generated_{n}"]
    out["goals_met"] = {
        "no_slower_than_pydicom_loop": all(out[k]["ours_vs_pydicom_loop"] >= 1.0 for k in ("chest_ct", f"generated_{n}")),
        "2x_faster_than_simpleitk": all(out[k]["ours_vs_simpleitk"] >= 2.0 for k in ("chest_ct", f"generated_{n}")),
        "peak_extra_le_1.3x": big["ours"]["peak_extra_ratio"] <= 1.3,
    }
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
