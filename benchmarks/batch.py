"""Benchmark `batch`: studies per hour of `medviewer predict --batch`, one process against two
torchrun processes, in the same run on the same studies.

Two workloads of real studies, each into a fresh output folder per launch:
- ``cxr``: the pneumonia classifier on PneumoniaMNIST test radiographs written as PNG files;
- ``ct``: the CT organ model on one slice (``--slice 0``) of each TotalSegmentator reference
  volume (NIfTI and DICOM; several are outside its domain, which is part of a real archive).

Each launch is timed from start to exit (imports, scan, model load and all studies: what a
user waits for; Python's bytecode cache is on, in the benchmark cache, warmed by a first
launch, as in an installed app), and the *steady* rate is taken from the summary's finish
times (first study started to last finished). One process gets all the cores' threads (torch threads = cores);
two processes get cores / 2 each (``threads_per_process``); a third setting, one process with
one thread (``--threads 1``), tells the gain of a second process from that of fewer threads
(a process whose threads wait on each other suffers most when other work takes the cores).
The launches of the settings alternate; ``ratio`` is two processes' best rate over one process's best (> 1: two processes
are faster; the best of N is the least disturbed by other work on a shared machine), and the
medians' ratio is printed beside it. ``--busy N`` keeps N extra processes
spinning on the CPU during the runs (the "other core loaded" case); ``load_avg_1m`` says how
idle the machine was at the start.

Usage: python benchmarks/batch.py [--quick] [--workload cxr|ct|both] [--busy N] [--repeats R]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, SHARED_DATA, busy_cores, emit  # noqa: E402

CT_STUDIES = SHARED_DATA / "totalseg/tests/reference_files"


def cxr_list(root: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    data = np.load(SHARED_DATA / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz")
    folder = root / "cxr"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(data["test_images"][i]).save(folder / f"cxr{i:04d}.png")
    return _write_list(root / "cxr.txt", sorted(folder.iterdir()))


def ct_list(root: Path, n: int) -> Path:
    vols = sorted(p for p in CT_STUDIES.rglob("*.nii.gz"))
    paths = [CT_STUDIES / "example_ct_dicom"] + vols
    return _write_list(root / "ct.txt", paths[:n])


def _write_list(path: Path, paths) -> Path:
    path.write_text("".join(f"{p}\n" for p in paths))
    return path


def launch(model: str, lst: Path, out: Path, nproc: int, extra: list,
           threads: int | None = None) -> dict:
    cli = ["-m", "medviewer.cli", "predict", "--model", model, "--list", str(lst),
           "--out", str(out), *extra] + (["--threads", str(threads)] if threads else [])
    if nproc == 1:
        cmd = [sys.executable, *cli]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
               f"--nproc_per_node={nproc}", *cli]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")  # as an installed app: compiled once
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1, 3):
        raise RuntimeError(f"batch failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    recs = [json.loads(x) for x in (out / "summary.jsonl").read_text().splitlines() if x]
    starts = [datetime.fromisoformat(r["finished"]).timestamp() - r["timings"]["total_s"]
              for r in recs]
    ends = [datetime.fromisoformat(r["finished"]).timestamp() for r in recs]
    window = max(ends) - min(starts)
    n = len(recs)
    return {"studies": n, "ok": sum(r["status"] == "ok" for r in recs), "wall_s": wall,
            "steady_s": window, "per_hour": 3600.0 * n / wall,
            "steady_per_hour": 3600.0 * n / max(window, 1e-9),
            "by_rank": {str(k): sum(r["rank"] == k for r in recs) for k in range(nproc)},
            "once_each": len({r["study_id"] for r in recs}) == n}


SETTINGS = {"p1": (1, None), "p2": (2, None), "p1_1thread": (1, 1)}  # processes, threads


def measure(name: str, model: str, lst: Path, root: Path, repeats: int, extra: list) -> dict:
    runs = {k: [] for k in SETTINGS}
    for r in range(repeats):
        order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))  # alternate
        for key in order:
            nproc, threads = SETTINGS[key]
            runs[key].append(launch(model, lst, root / f"{name}-{key}-{r}", nproc, extra,
                                    threads))
    res = {}
    for key, rs in runs.items():
        res[key] = {
            "best_per_hour": round(max(x["per_hour"] for x in rs)),
            "median_per_hour": round(statistics.median(x["per_hour"] for x in rs)),
            "steady_per_hour": round(statistics.median(x["steady_per_hour"] for x in rs)),
            "wall_s": [round(x["wall_s"], 1) for x in rs], "studies": rs[0]["studies"],
            "ok": rs[0]["ok"], "by_rank": [x["by_rank"] for x in rs],
            "once_each": all(x["once_each"] for x in rs)}
    p1, p2, p11 = res["p1"], res["p2"], res["p1_1thread"]
    res["ratio_2_over_1"] = round(p2["best_per_hour"] / p1["best_per_hour"], 3)
    res["median_ratio_2_over_1"] = round(p2["median_per_hour"] / p1["median_per_hour"], 3)
    res["steady_ratio_2_over_1"] = round(p2["steady_per_hour"] / p1["steady_per_hour"], 3)
    res["ratio_2_over_1_1thread"] = round(p2["best_per_hour"] / p11["best_per_hour"], 3)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 studies per workload, one repeat")
    ap.add_argument("--workload", choices=("cxr", "ct", "both"), default="both")
    ap.add_argument("--busy", type=int, default=0, help="CPU-spinning processes during runs")
    ap.add_argument("--repeats", type=int, default=None,
                    help="launches per setting (default 3, --quick 1)")
    a = ap.parse_args()
    n = 8 if a.quick else 24
    repeats = a.repeats or (1 if a.quick else 3)
    load = os.getloadavg()[0]
    out = {"benchmark": "batch", "quick": a.quick, "cores": os.cpu_count(), "busy": a.busy,
           "load_avg_1m": round(load, 2), "repeats": repeats}
    with busy_cores(a.busy), tempfile.TemporaryDirectory(prefix="mv-batch-") as tmp:
        root = Path(tmp)
        warm = _write_list(root / "warm.txt", [CT_STUDIES / "example_ct_sm.nii.gz"])
        launch("ct-abdomen-organs", warm, root / "warm", 1, ["--slice", "0"])  # bytecode
        if a.workload in ("cxr", "both"):
            out["cxr"] = measure("cxr", "pneumonia-cxr", cxr_list(root, n), root, repeats, [])
        if a.workload in ("ct", "both"):
            out["ct"] = measure("ct", "ct-abdomen-organs", ct_list(root, n), root, repeats,
                                ["--slice", "0"])
    first = out.get("cxr") or out["ct"]
    out["ratio"] = first["ratio_2_over_1"]  # the headline: the first workload measured
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
