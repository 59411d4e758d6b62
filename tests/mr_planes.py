"""A three-class task no built-in model has seen, made from real MR brain volumes in the shared
data: which imaging plane a 2D brain MR image shows — axial, coronal or sagittal.

The images are real reformats of real scans (what a viewer shows): the MNI152 2009a T1
template (1 mm isotropic, nilearn) and the two pyradiomics brain MR studies (0.78 mm pixels,
6.5 mm axial slices, so their coronal and sagittal reformats are as blocky as any reformat of
thick slices). Each plane image is cut through the brain (slices where the head covers at
least half of its largest cross-section in that plane), resampled to square ~1 mm pixels with
superior up, windowed to the volume's 0.5-99.5 percentiles and written as an 8-bit PNG. The
label is the plane the image was cut in: exact by construction, no person's judgement
involved. Plane recognition is a real task (sorting reformats and series by orientation for
hanging protocols); it is easy for a CNN, which is the point here: the test proves the loop,
not a hard model.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

PLANES = ("axial", "coronal", "sagittal")
# the MNI152 "sym" template is left-right symmetric: mirrored sagittal slices are identical
SYMMETRIC = ("mni152",)
SUBJECTS = {
    "mni152": "nilearn_mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "brain1": "pyradiomics_data/data/brain1_image.nrrd",
    "brain2": "pyradiomics_data/data/brain2_image.nrrd",
}


def _plane_images(vol, plane: str) -> tuple:
    """(stack of 2D images (n, rows, cols) in that plane, (row mm, col mm) pixel size)."""
    a = np.asarray(vol.array, dtype=np.float32)  # (z, y, x); z towards superior (LPS +z)
    sx, sy, sz = vol.geometry.spacing
    if plane == "axial":
        return a, (sy, sx)
    if plane == "coronal":
        return a.transpose(1, 0, 2)[:, ::-1, :], (sz, sx)  # (y, z, x), superior up
    return a.transpose(2, 0, 1)[:, ::-1, :], (sz, sy)  # (x, z, y), superior up


def _to_png(img: np.ndarray, pixel_mm: tuple, lo: float, hi: float, path: Path) -> None:
    from PIL import Image
    from scipy import ndimage

    zoom = (pixel_mm[0] / 1.0, pixel_mm[1] / 1.0)  # ~1 mm square pixels
    img = ndimage.zoom(img, zoom, order=1) if zoom != (1.0, 1.0) else img
    u8 = np.clip((img - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)
    Image.fromarray(u8).save(path)


def make_plane_pngs(shared_data: Path, out_dir: Path, subjects=("mni152", "brain1"),
                    per_plane: int = 12) -> list:
    """Write ``per_plane`` PNGs per plane per subject into ``out_dir``; [(path, plane)]."""
    from medviewer.io.volume_files import read_volume_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for subject in subjects:
        vol = read_volume_file(Path(shared_data) / SUBJECTS[subject])
        a = np.asarray(vol.array, dtype=np.float32)
        lo, hi = (float(v) for v in np.percentile(a, [0.5, 99.5]))
        head = a > lo + 0.1 * (hi - lo)
        for plane in PLANES:
            stack, pixel_mm = _plane_images(vol, plane)
            mask, _ = _plane_images(type(vol)(head.astype(np.uint8), vol.geometry), plane)
            area = mask.reshape(mask.shape[0], -1).sum(1)
            keep = np.flatnonzero(area >= 0.5 * area.max())
            if plane == "sagittal" and subject in SYMMETRIC:
                keep = keep[keep <= stack.shape[0] // 2]  # one hemisphere and the midline
            picks = keep[np.linspace(0, len(keep) - 1, min(per_plane, len(keep))).round()
                         .astype(int)]
            for i in sorted(set(picks.tolist())):
                path = out_dir / f"{subject}_{plane}_{i:03d}.png"
                _to_png(stack[i], pixel_mm, lo, hi, path)
                rows.append((path, plane))
    return rows


def write_csv(rows: list, path: Path, header: bool = True) -> Path:
    """The labels as ``path,label`` (paths relative to the CSV's folder)."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if header:
            w.writerow(["path", "label"])
        for p, label in rows:
            w.writerow([Path(p).resolve().relative_to(path.resolve().parent).as_posix(), label])
    return path
