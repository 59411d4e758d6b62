"""The CT organ training data: TotalSegmentator's reference CTs and labels, on one 2D grid.

Two small abdominal CTs with TotalSegmentator ``total`` labels (a model's output, not manual):
case ``A`` = example_ct_sm.nii.gz + example_seg.nii.gz (30 slices, 3 mm), case ``B`` = the
example_ct_dicom series (20 slices 512x512, 0.98 mm, JPEG 2000) + example_seg_dicom.nii.gz.
Everything is brought to the canonical array orientation the viewer gets from a usual axial
DICOM series: ``arr[z, y, x]`` with x towards the patient's left, y posterior, z superior.

The reference pipeline of the model card lives here too: window, in-plane resampling to the
model spacing, sliding-window inference, resampling back, Dice per organ (MONAI DiceMetric).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.ai.starters.common import REPO, apply_intensity, file_sha256

__all__ = ["REF_DIR", "ORGANS", "LABELS", "HOLDOUT", "SPACING", "PATCH", "INTENSITY", "Case",
           "load_cases", "to_grid", "predict_probs", "dice_per_organ", "data_hashes"]

REF_DIR = REPO / ".." / "shared" / "data" / "totalseg" / "tests" / "reference_files"
# our label -> TotalSegmentator 'total' class ids (resources/labels/totalsegmentator_total_ct.csv)
ORGANS = [("liver", (5,)), ("spleen", (1,)), ("kidney_right", (2,)), ("kidney_left", (3,)),
          ("stomach", (6,)), ("lung", (10, 11, 12, 13, 14))]
LABELS = ["background"] + [name for name, _ in ORGANS]
# held-out contiguous slice blocks (array z index, inferior -> superior) per case
HOLDOUT = {"A": (15, 22), "B": (16, 20)}
SPACING = [2.0, 2.0]  # model in-plane spacing [row, col] mm
PATCH = [160, 160]
INTENSITY = {"type": "ct_window", "center": -250.0, "width": 1500.0}
FILES = {"A": ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
         "B": ("example_ct_dicom", "example_seg_dicom.nii.gz")}


@dataclass
class Case:
    name: str
    ct: np.ndarray  # (z, y, x) float32 HU, canonical LPS orientation
    labels: np.ndarray  # (z, y, x) uint8, our label indices
    spacing_zyx: tuple

    def split(self, held_out: bool) -> np.ndarray:
        """z indices of the training (False) or held-out (True) slices."""
        a, b = HOLDOUT[self.name]
        z = np.arange(self.ct.shape[0])
        return z[(z >= a) & (z < b)] if held_out else z[(z < a) | (z >= b)]


def _canonical_nifti(path: Path) -> tuple[np.ndarray, tuple]:
    import nibabel as nib
    from nibabel.orientations import (apply_orientation, axcodes2ornt, io_orientation,
                                      ornt_transform)

    img = nib.load(str(path))
    t = ornt_transform(io_orientation(img.affine), axcodes2ornt(("L", "P", "S")))
    data = apply_orientation(np.asanyarray(img.dataobj), t).transpose(2, 1, 0)
    zooms = [float(v) for v in img.header.get_zooms()[:3]]
    sp = [0.0, 0.0, 0.0]
    for axis_in, (axis_out, _) in enumerate(t):  # input axis i moves to output axis t[i, 0]
        sp[int(axis_out)] = zooms[axis_in]
    return np.ascontiguousarray(data), (sp[2], sp[1], sp[0])


def _read_dicom_ct(folder: Path) -> np.ndarray:
    import pydicom

    slices = [pydicom.dcmread(str(p)) for p in sorted(folder.iterdir()) if p.is_file()]
    for ds in slices:
        if [round(float(v)) for v in ds.ImageOrientationPatient] != [1, 0, 0, 0, 1, 0]:
            raise ValueError("expected plain axial DICOM slices")
    slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))  # inferior -> superior
    return np.stack([ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope)
                     + float(ds.RescaleIntercept) for ds in slices])


def _map_labels(seg: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for index, (_, ids) in enumerate(ORGANS, start=1):
        lut[list(ids)] = index
    return lut[seg.astype(np.int64)]


def load_cases() -> list[Case]:
    """Cases A and B, canonical orientation, labels mapped to :data:`LABELS`."""
    cases = []
    for name, (ct_file, seg_file) in FILES.items():
        seg, spacing = _canonical_nifti(REF_DIR / seg_file)
        if name == "A":
            ct, ct_sp = _canonical_nifti(REF_DIR / ct_file)
            assert np.allclose(ct_sp, spacing)
        else:
            ct = _read_dicom_ct(REF_DIR / ct_file)
        if ct.shape != seg.shape:
            raise ValueError(f"case {name}: CT {ct.shape} and labels {seg.shape} differ")
        cases.append(Case(name, ct.astype(np.float32), _map_labels(seg), spacing))
    return cases


def path_sha256(p: Path) -> str:
    """sha256 of a file; of a folder, the sha256 of its sorted ``name:sha256`` lines."""
    if not p.is_dir():
        return file_sha256(p)
    import hashlib

    h = hashlib.sha256()
    for q in sorted(p.iterdir()):
        h.update(f"{q.name}:{file_sha256(q)}\n".encode())
    return h.hexdigest()


def data_hashes() -> dict:
    return {f: path_sha256(REF_DIR / f) for files in FILES.values() for f in files}


def grid_shape(shape_yx: tuple, spacing_yx: tuple) -> tuple:
    return tuple(max(1, int(round(n * s / m))) for n, s, m in zip(shape_yx, spacing_yx, SPACING))


def to_grid(stack: np.ndarray, spacing_yx: tuple, labels: bool = False):
    """(z, y, x) -> torch (z, 1, y', x') on the model grid (window + bilinear, or nearest)."""
    import torch
    import torch.nn.functional as F

    size = grid_shape(stack.shape[1:], spacing_yx)
    if labels:
        t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None]
        return F.interpolate(t, size=size, mode="nearest-exact")
    t = torch.from_numpy(apply_intensity(stack, INTENSITY))[:, None]
    shrink = size[0] < stack.shape[1] or size[1] < stack.shape[2]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def predict_probs(model, stack: np.ndarray, spacing_yx: tuple, batch: int = 8) -> np.ndarray:
    """Softmax probabilities (C, z, y, x) float32 on the stack's own grid."""
    import torch
    import torch.nn.functional as F
    from monai.inferers import sliding_window_inference

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, stack.shape[0], batch):
            x = to_grid(stack[i:i + batch], spacing_yx)
            logits = sliding_window_inference(x, roi_size=PATCH, sw_batch_size=4,
                                              predictor=model, overlap=0.25, mode="gaussian")
            probs = torch.softmax(logits.float(), dim=1)
            probs = F.interpolate(probs, size=stack.shape[1:], mode="bilinear",
                                  align_corners=False)
            out.append(probs.numpy())
    return np.concatenate(out).transpose(1, 0, 2, 3).astype(np.float32)


def dice_per_organ(model, cases: list[Case]) -> dict:
    """MONAI DiceMetric per organ on the held-out slices (each case's block one 3D sample;
    mean over the cases where the organ is present in the reference)."""
    import torch
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    metric = DiceMetric(include_background=False, reduction="mean_batch", ignore_empty=True)
    n = len(LABELS)
    for case in cases:
        z = case.split(held_out=True)
        probs = predict_probs(model, case.ct[z], case.spacing_zyx[1:])
        pred = torch.from_numpy(probs.argmax(0).astype(np.int64))[None, None]
        ref = torch.from_numpy(case.labels[z].astype(np.int64))[None, None]
        metric(y_pred=one_hot(pred, n), y=one_hot(ref, n))
    per = metric.aggregate().numpy()
    return {name: (None if np.isnan(v) else float(v)) for name, v in zip(LABELS[1:], per)}
