"""Shared helpers for the storage tests: real label data, brush-disc strokes, a journal writer
that runs in a child process (killed with SIGKILL by the tests)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
TOTALSEG = DATA / "totalseg" / "tests" / "reference_files"
EXAMPLE_SEG = TOTALSEG / "example_seg.nii.gz"
EXAMPLE_CT = TOTALSEG / "example_ct_sm.nii.gz"


def real_seg() -> tuple[np.ndarray, np.ndarray]:
    """TotalSegmentator's example segmentation as (z, y, x) uint8 labels + its RAS affine."""
    img = nib.load(str(EXAMPLE_SEG))
    labels = np.ascontiguousarray(np.asarray(img.dataobj).astype(np.uint8).T)
    return labels, np.asarray(img.affine, dtype=float)


def disc_indices(shape, z: int, cy: float, cx: float, r: float) -> np.ndarray:
    """Flat, sorted indices of a 2D disc of radius r (voxels) on slice z of a (z, y, x) grid."""
    nz, ny, nx = shape
    y0, y1 = max(0, int(np.floor(cy - r))), min(ny, int(np.ceil(cy + r)) + 1)
    x0, x1 = max(0, int(np.floor(cx - r))), min(nx, int(np.ceil(cx + r)) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    flat = (z * ny + yy[inside]) * nx + xx[inside]
    return np.sort(flat.astype(np.int64))


def stroke_plan(n: int, shape, seed: int = 7, n_labels: int = 6) -> list:
    """n brush strokes (z, cy, cx, radius, value); value 0 is an eraser stroke."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    plan = []
    for i in range(n):
        value = 0 if i % 5 == 4 else int(rng.integers(1, n_labels + 1))
        plan.append((int(rng.integers(0, nz)), float(rng.uniform(0, ny)),
                     float(rng.uniform(0, nx)), float(rng.uniform(4, 25)), value))
    return plan


def make_stroke(labels: np.ndarray, step) -> tuple:
    """(indices, old, new, label, tool) of one planned stroke against ``labels`` (not applied)."""
    z, cy, cx, r, value = step
    idx = disc_indices(labels.shape, z, cy, cx, r)
    old = labels.reshape(-1)[idx].copy()
    new = np.full(idx.size, value, dtype=labels.dtype)
    return idx, old, new, value, "eraser" if value == 0 else "brush"


def reference(base: np.ndarray, plan, k: int) -> np.ndarray:
    """The labels after the first k planned strokes, applied directly."""
    out = base.copy()
    for step in plan[:k]:
        idx, _, new, _, _ = make_stroke(out, step)
        out.reshape(-1)[idx] = new
    return out


CHILD = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from _storage_data import make_stroke, stroke_plan
from medviewer.storage.journal import StrokeJournal
from medviewer.storage.store import Effort, LabelStore

ws, image_hash, base_id, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
shape = tuple(int(s) for s in sys.argv[6].split(","))
if base_id == "-":
    base_id, labels = None, np.zeros(shape, np.uint8)
else:
    store = LabelStore(ws)
    labels = store.load_labels(store.get(base_id))
    store.close()
journal = StrokeJournal.open(ws, image_hash, base_id, labels.shape, labels.dtype,
                             {"1": "liver"})
print("OPEN", flush=True)
flat = labels.reshape(-1)
for i, step in enumerate(stroke_plan(n, labels.shape), start=1):
    idx, old, new, value, tool = make_stroke(labels, step)
    flat[idx] = new
    journal.append(idx, old, new, value, tool, Effort(0.5, 1, idx.size))
    print(f"STROKE {i}", flush=True)
print("DONE", flush=True)
"""


def run_and_kill(ws, image_hash: str, base_id, shape, n_total: int, kill_after: int) -> int:
    """Run the journal writer in a child; SIGKILL it once it reported ``kill_after`` strokes
    (it is still appending more). Returns the last stroke number the child printed."""
    cmd = [sys.executable, "-c", CHILD, str(HERE), str(ws), image_hash, base_id or "-",
           str(n_total), ",".join(str(s) for s in shape)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if line.startswith("STROKE") and int(line.split()[1]) >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
        else:
            raise AssertionError(f"child ended early: {out[-3:]} {proc.stderr.read()}")
        rest, _ = proc.communicate(timeout=60)  # lines printed before the kill landed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(out) + rest
    assert proc.returncode == -signal.SIGKILL
    assert "DONE" not in text, "the child finished before it was killed"
    return max(int(n) for n in re.findall(r"^STROKE (\d+)$", text, flags=re.M))


def wait_for(predicate, timeout: float = 60.0, step: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False
