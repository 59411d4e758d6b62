"""Benchmark `nifti_load`: our NIfTI/NRRD loading (``read_volume_file``) against a plain
reader of the same file, time and peak memory, in the same run.

Baselines, each returning the same array as ours (same dtype and values: the parent checks
a digest of the (z, y, x) array, computed after the clock stops):
- NIfTI: nibabel, ``np.asanyarray(nib.load(p, mmap=False).dataobj)`` (unscaled here, so the
  stored dtype, int16 for CT; ``get_fdata`` would be float64). ``mmap=False`` because we
  return voxels in memory: nibabel's default memory map of a .nii reads nothing until the
  voxels are touched, so it is not the same work;
- NRRD: SimpleITK (pynrrd is not installed), ``GetArrayViewFromImage(ReadImage(p))``, the
  image kept alive: SimpleITK's read without the copy ``GetArrayFromImage`` adds.

Files: the shared NIfTIs (TotalSegmentator reference CT/MR/segmentations, the MNI152
template) and NRRDs (pyradiomics), plus a study-sized CT: the real chest CT's slices repeated
to 512 x 512 x 300 int16, written by our NIfTI writer as .nii.gz and .nii (cached).

Each read runs in a fresh interpreter (file cache warm) that first reads a tiny (8 x 8 x 8)
file of the same format the same way, before the clock starts: imports, lazy imports and
library start-up (ITK's reader factories, psutil) are paid once per process, as in the app,
and are not the file's read. Memory: peak RSS (VmHWM, reset after the warm-up through
/proc/self/clear_refs) minus RSS before the read, with glibc's mmap threshold fixed at
64 KiB in the children (``MALLOC_MMAP_THRESHOLD_``) so that every large buffer is mapped
when allocated and unmapped when freed, for either method: with glibc's default (a
threshold that grows after each free) a freed buffer stays resident and is reused, and
peaks of small files read as 0. Even so glibc serves a request from a free heap chunk when
one fits, so a read of a few MB can show no growth at all: memory ratios are given only
where the baseline's peak is at least 16 MB (``memory_ratio`` null otherwise).

Best of ``--repeats`` runs per method, the methods alternating; ratios are ours / baseline.
Goals (``goals_met``): ours within 1.2x of the baseline's time and memory on the study-sized
files; ``all_files_time_within_1.2x`` says whether the small shared files meet the time goal
too (a read of a file under 1 MB carries ~1 ms of checks that a bare read does not make:
nibabel's and SimpleITK's header parses, the memory budget, the size check). ``--busy N``
keeps N processes spinning on the CPU during the runs.

Usage: python benchmarks/nifti_load.py [--quick] [--busy N] [--repeats R]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, CHEST_CT, SHARED_DATA, busy_cores, emit, run_child  # noqa: E402

CHILD = r'''
import hashlib, json, sys, time
method, path, warm = sys.argv[1], sys.argv[2], sys.argv[3]
from _common import rss_bytes, peak_rss_bytes
import numpy as np
if method == "ours":
    from medviewer.io import volume_files
elif method == "nibabel":
    import nibabel as nib
else:
    import SimpleITK as sitk
def read(p):
    if method == "ours":
        return volume_files.read_volume_file(p).array, None
    if method == "nibabel":
        return np.asanyarray(nib.load(p, mmap=False).dataobj), None
    img = sitk.ReadImage(p)
    return sitk.GetArrayViewFromImage(img), img  # the view needs its image
read(warm)  # a tiny file of the same format: lazy imports and library start-up
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # VmHWM back to the RSS now: the peak below is this read's
base = rss_bytes()
t0 = time.perf_counter()
arr, keep = read(path)
dt = time.perf_counter() - t0
peak = peak_rss_bytes() - base
zyx = arr.transpose(2, 1, 0) if method == "nibabel" else arr
digest = hashlib.sha1(np.ascontiguousarray(zyx).tobytes()).hexdigest()
print(json.dumps({"s": dt, "peak_extra": peak, "nbytes": int(arr.nbytes), "dtype": str(arr.dtype),
                  "shape": list(zyx.shape), "digest": digest}))
'''

MIN_PEAK = 16e6  # bytes: smaller peaks are not resolved by RSS (see the doc)
SHARED = [
    "totalseg/tests/reference_files/example_ct.nii.gz",
    "totalseg/tests/reference_files/example_ct_sm.nii.gz",
    "totalseg/tests/reference_files/example_mr_sm.nii.gz",
    "totalseg/tests/reference_files/example_seg.nii.gz",
    "nilearn_mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "pyradiomics_data/data/brain1_image.nrrd",
    "pyradiomics_data/data/breast1_image.nrrd",
    "pyradiomics_data/data/prostate_phantom_subvolume.nrrd",
]


def study_ct(n_slices: int) -> list:
    """The chest CT's slices repeated to 512 x 512 x N int16, as .nii.gz and .nii (cached)."""
    out = CACHE / "nifti_load"
    paths = [out / f"chest_ct_{n_slices}.nii.gz", out / f"chest_ct_{n_slices}.nii"]
    if all(p.is_file() for p in paths):
        return paths
    import numpy as np

    from medviewer.core.geometry import Geometry
    from medviewer.core.volume import Volume
    from medviewer.io.load import open_first
    from medviewer.io.nifti_writer import write_nifti

    src = open_first(CHEST_CT)
    arr = np.resize(src.array, (n_slices,) + src.array.shape[1:])
    g = src.geometry
    vol = Volume(array=arr, geometry=Geometry(shape=arr.shape, spacing=g.spacing,
                                              origin=g.origin, direction=g.direction),
                 modality="CT", units="HU")
    out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        write_nifti(vol, p)
    return paths


def tiny_files() -> dict:
    """8 x 8 x 8 int16 files, one per format (cached): the children's warm-up reads."""
    out = CACHE / "nifti_load"
    paths = {suf: out / f"tiny{suf}" for suf in (".nii.gz", ".nii", ".nrrd")}
    if not all(p.is_file() for p in paths.values()):
        import numpy as np
        import SimpleITK as sitk

        out.mkdir(parents=True, exist_ok=True)
        img = sitk.GetImageFromArray(np.arange(512, dtype=np.int16).reshape(8, 8, 8))
        for p in paths.values():
            sitk.WriteImage(img, str(p), p.suffix == ".gz")
    return paths


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def bench(path: Path, repeats: int, warm: Path) -> dict:
    path.read_bytes()  # warm the file cache
    base = "simpleitk" if path.name.lower().endswith((".nrrd", ".nhdr")) else "nibabel"
    runs = {"ours": [], base: []}
    for r in range(repeats):
        for method in (("ours", base) if r % 2 == 0 else (base, "ours")):
            runs[method].append(run_child(CHILD, method, str(path), str(warm)))
    ours, ref = runs["ours"], runs[base]
    same = {(x["digest"], x["dtype"], tuple(x["shape"])) for x in ours + ref}
    if len(same) != 1:
        raise SystemExit(f"{path.name}: ours and {base} returned different arrays: {same}")
    t_o, t_b = min(x["s"] for x in ours), min(x["s"] for x in ref)
    m_o, m_b = min(x["peak_extra"] for x in ours), min(x["peak_extra"] for x in ref)
    return {"baseline": base, "dtype": ours[0]["dtype"], "shape": ours[0]["shape"],
            "mb": round(ours[0]["nbytes"] / 1e6, 2),
            "ours_s": round(t_o, 4), "baseline_s": round(t_b, 4),
            "ours_peak_mb": round(m_o / 1e6, 2), "baseline_peak_mb": round(m_b / 1e6, 2),
            "time_ratio": round(t_o / t_b, 3),
            "memory_ratio": round(m_o / m_b, 3) if m_b >= MIN_PEAK else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 100-slice study CT, 1 repeat")
    ap.add_argument("--busy", type=int, default=0, help="CPU-spinning processes during runs")
    ap.add_argument("--repeats", type=int, default=None, help="runs per method (default 3)")
    a = ap.parse_args()
    repeats = a.repeats or (1 if a.quick else 3)
    n_slices = 100 if a.quick else 300
    files = [SHARED_DATA / rel for rel in SHARED if (SHARED_DATA / rel).is_file()]
    files += study_ct(n_slices)  # written before the hogs start
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # for the children (see the doc)
    warm = tiny_files()
    out = {"benchmark": "nifti_load", "quick": a.quick, "busy": a.busy, "repeats": repeats,
           "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "files": {}}
    with busy_cores(a.busy):
        for p in files:
            out["files"][p.name] = res = bench(p, repeats, warm[_suffix(p)])
            print(p.name, res, file=sys.stderr)
    res = out["files"]
    study = [res[p.name] for p in files[-2:]]
    out["study_time_ratio"] = max(r["time_ratio"] for r in study)
    out["study_memory_ratio"] = max(r["memory_ratio"] for r in study)
    out["worst_time_ratio"] = max(r["time_ratio"] for r in res.values())
    mem = [r["memory_ratio"] for r in res.values() if r["memory_ratio"] is not None]
    out["worst_memory_ratio"] = max(mem) if mem else None
    out["goals_met"] = {"study_time_within_1.2x": out["study_time_ratio"] <= 1.2,
                        "study_memory_within_1.2x": out["study_memory_ratio"] <= 1.2,
                        "all_files_time_within_1.2x": out["worst_time_ratio"] <= 1.2}
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
