"""Benchmark `labels_io`: save and load a 512 x 512 x 300 label map.

The label map is real anatomy: TotalSegmentator's reference segmentation (117-class CT labels)
resampled (nearest neighbour) to 512 x 512 x 300. Timed paths:
- the label store: LabelStore.add_labelmap (compressed NIfTI written atomically + SQLite row)
  and LabelStore.load_labels;
- export/import: medviewer.io.labels_io.write_labelmap / read_labelmap (.nii.gz and .nrrd).
Baseline, same run: nibabel's default `to_filename` / `load` of the same array as .nii.gz.
Goal: <= 1 s each for save and load. Usage: python benchmarks/labels_io.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, emit  # noqa: E402

SEG = SHARED_DATA / "totalseg" / "tests" / "reference_files" / "example_seg.nii.gz"


def real_label_map(shape=(300, 512, 512)) -> np.ndarray:
    import nibabel as nib

    seg = np.asarray(nib.load(str(SEG)).dataobj).transpose(2, 1, 0)  # (z, y, x)
    idx = [np.minimum((np.arange(n) * seg.shape[a] / n).astype(int), seg.shape[a] - 1)
           for a, n in enumerate(shape)]
    return np.ascontiguousarray(seg[np.ix_(*idx)]).astype(np.uint8)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat instead of 3")
    a = ap.parse_args()
    repeats = 1 if a.quick else 3
    import nibabel as nib

    from medviewer.core.geometry import Geometry
    from medviewer.io.labels_io import read_labelmap, write_labelmap
    from medviewer.storage.store import LabelStore, Source

    labels = real_label_map()
    geo = Geometry(shape=labels.shape, spacing=(0.8, 0.8, 1.5))
    affine = geo.affine_ras()
    out = {"benchmark": "labels_io", "quick": a.quick, "shape": list(labels.shape),
           "labels": int(len(np.unique(labels)) - 1), "mbytes": round(labels.nbytes / 2**20, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = LabelStore(tmp / "ws")
        rec = {}

        def store_save():
            rec["r"] = store.add_labelmap("bench", labels, affine, {}, "corrected",
                                          Source("person", "benchmark"))

        out["store_save_s"] = round(best_of(store_save, repeats), 3)
        loaded = store.load_labels(rec["r"])
        assert np.array_equal(loaded, labels)
        out["store_load_s"] = round(best_of(lambda: store.load_labels(rec["r"]), repeats), 3)
        store.close()
        for suffix in (".nii.gz", ".nrrd"):
            path = tmp / f"export{suffix}"
            key = suffix.strip(".").replace(".", "_")
            out[f"export_{key}_s"] = round(best_of(lambda: write_labelmap(labels, geo, path), repeats), 3)
            back = read_labelmap(path, geo)[0]
            assert np.array_equal(back, labels)
            out[f"import_{key}_s"] = round(best_of(lambda: read_labelmap(path, geo), repeats), 3)
        ref = tmp / "nibabel_default.nii.gz"
        img = nib.Nifti1Image(labels.transpose(2, 1, 0), affine)
        out["baseline_nibabel_save_s"] = round(best_of(lambda: img.to_filename(str(ref)), repeats), 3)
        out["baseline_nibabel_load_s"] = round(best_of(
            lambda: np.asarray(nib.load(str(ref)).dataobj), repeats), 3)
    times = [v for k, v in out.items() if k.endswith("_s") and not k.startswith("baseline")]
    out["store_save_vs_nibabel"] = round(out["baseline_nibabel_save_s"] / out["store_save_s"], 2)
    out["goal_le_1s_each"] = max(times) <= 1.0
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
