"""Training data of the whole-trunk CT model: every labelled CT in ``../shared/data``.

Three cases, all brought to the viewer's canonical array orientation ``arr[z, y, x]`` (x towards
the patient's left, y posterior, z superior), in Hounsfield units:

- ``A``: TotalSegmentator's ``example_ct.nii.gz``, 112 slices of 3 mm from the pelvis to the lung
  bases (contrast-enhanced, portal venous). Labels: TotalSegmentator's full model
  (``example_seg.nii.gz``) on the 30 slices it covers (``example_ct_sm`` is ``example_ct``'s
  z 82..111), its fast model (``example_seg_fast_force_split.nii.gz``) on the rest.
- ``B``: the ``example_ct_dicom`` series, 20 slices 512^2 of 0.98 mm and 2 mm steps at the
  upper abdomen, with ``example_seg_dicom.nii.gz``.
- ``C``: the chest crop of a CT angiogram (``aorta_report``/``pulmonary_report``: one scan, the
  same grid), 164 slices of 1.5 mm with the aorta and the heart (the pulmonary artery is
  removed from the heart mask: it is not heart). Only those two are labelled there.

All labels are a model's output (TotalSegmentator), not manual outlines.

Partial labels: where a structure is present but not labelled (the lungs, spine, liver and
stomach in the chest crop; the heart above the lung bases of A), voxels
with label 0 may be background *or* one of the case's ``unlabelled`` classes: the training
loss sums their probabilities (a marginal loss) instead of calling them background.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medviewer.ai.starters.common import REPO
from medviewer.ai.starters.ct_data import _canonical_nifti, _read_dicom_ct, path_sha256

__all__ = ["REF_DIR", "STRUCTURES", "LABELS", "HOLDOUT", "SPACING", "PATCH", "INTENSITY",
           "CONTEXT_MM", "Case", "load_cases", "data_hashes"]

REF_DIR = REPO / ".." / "shared" / "data" / "totalseg" / "tests" / "reference_files"
# our label -> TotalSegmentator 'total' class ids (resources/labels/totalsegmentator_total_ct.csv)
STRUCTURES = [("lung_left", (10, 11)), ("lung_right", (12, 13, 14)), ("heart", (51,)),
              ("aorta", (52,)), ("liver", (5,)), ("spleen", (1,)), ("kidney_left", (3,)),
              ("kidney_right", (2,)), ("stomach", (6,)), ("gallbladder", (4,)),
              ("urinary_bladder", (21,)), ("vertebrae", tuple(range(25, 51)))]
LABELS = ["background"] + [name for name, _ in STRUCTURES]
INDEX = {name: i for i, name in enumerate(LABELS)}
# held-out contiguous slabs (array z, inferior -> superior, end exclusive): never trained on
HOLDOUT = {"A": (86, 96), "B": (8, 12), "C": (60, 76)}
SPACING = [2.0, 2.0]  # model in-plane spacing [row, col] mm
PATCH = [256, 256]  # one window covers a 512 mm field of view
INTENSITY = {"type": "ct_window", "center": -200.0, "width": 1800.0}
CONTEXT_MM = [-3.0, 0.0, 3.0]  # input channels: the slice and the volume 3 mm below/above

FILES = {"A": ["example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", "example_seg.nii.gz"],
         "B": ["example_ct_dicom", "example_seg_dicom.nii.gz"],
         "C": ["aorta_report/test_result/models/ct_cropped.nii.gz",
               "aorta_report/test_result/models/aorta.nii.gz",
               "pulmonary_report/models/heart.nii.gz",
               "pulmonary_report/models/pulmonary_artery.nii.gz",
               "pulmonary_report/models/ct_cropped.nii.gz"]}
A_FULL_LABELS_AT = 82  # example_seg.nii.gz covers example_ct's z 82..111
# label codes beyond the classes: "one of these classes" (a marginal target) and "ignore"
ANY_LUNG = 200
IGNORE = 255
GROUPS = {ANY_LUNG: ("lung_left", "lung_right")}


@dataclass
class Case:
    name: str
    ct: np.ndarray  # (z, y, x) float32 HU
    labels: np.ndarray  # (z, y, x) uint8, indices into LABELS
    spacing_zyx: tuple
    # per slice: the classes (besides background) that label-0 voxels may be
    unlabelled: list = field(default_factory=list)
    # a crop of a larger scan: its edges cut through the body (no air around it)
    cropped: bool = False
    # its lungs come from a rule (:func:`aerated_lung`), not from TotalSegmentator
    rule_lungs: bool = False

    def split(self, held_out: bool) -> np.ndarray:
        a, b = HOLDOUT[self.name]
        z = np.arange(self.ct.shape[0])
        inside = (z >= a) & (z < b)
        return z[inside] if held_out else z[~inside]

    def labelled(self) -> list:
        """Classes outlined in this case wherever they are (Dice is measured on these)."""
        never = set.intersection(*(set(u) for u in self.unlabelled)) if self.unlabelled else set()
        present = set(int(v) for v in np.unique(self.labels) if v < len(LABELS)) - {0}
        return sorted(present - never)


def _lut() -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for index, (_, ids) in enumerate(STRUCTURES, start=1):
        lut[list(ids)] = index
    return lut


def map_labels(seg: np.ndarray) -> np.ndarray:
    return _lut()[seg.astype(np.int64)]


def _on_grid(moving: Path, fixed: Path) -> np.ndarray:
    """A mask file resampled (nearest) onto another file's voxel grid via their affines,
    returned as a NIfTI-order array of the fixed file's shape."""
    import nibabel as nib

    f, m = nib.load(str(fixed)), nib.load(str(moving))
    src = np.asarray(m.dataobj)
    idx = np.indices(f.shape[:3]).reshape(3, -1).astype(np.float64)
    to_m = np.linalg.inv(m.affine) @ f.affine
    w = np.rint(to_m[:3, :3] @ idx + to_m[:3, 3:]).astype(np.int64)
    ok = np.all((w >= 0) & (w < np.array(src.shape[:3])[:, None]), axis=0)
    out = np.zeros(idx.shape[1], src.dtype)
    out[ok] = src[tuple(w[:, ok])]
    return out.reshape(f.shape[:3])


def _canonical_array(arr: np.ndarray, like: Path) -> np.ndarray:
    """``arr`` (on ``like``'s grid, NIfTI order) in canonical (z, y, x) LPS order."""
    import nibabel as nib
    from nibabel.orientations import (apply_orientation, axcodes2ornt, io_orientation,
                                      ornt_transform)

    img = nib.load(str(like))
    t = ornt_transform(io_orientation(img.affine), axcodes2ornt(("L", "P", "S")))
    return np.ascontiguousarray(apply_orientation(arr, t).transpose(2, 1, 0))


def _case_a() -> Case:
    ct, sp = _canonical_nifti(REF_DIR / FILES["A"][0])
    fast, _ = _canonical_nifti(REF_DIR / FILES["A"][1])
    full, _ = _canonical_nifti(REF_DIR / FILES["A"][2])
    seg = map_labels(fast)
    seg[A_FULL_LABELS_AT:A_FULL_LABELS_AT + full.shape[0]] = map_labels(full)
    lungs = {INDEX["lung_left"], INDEX["lung_right"]}
    # the heart is not labelled in A: near the lung bases label 0 may be heart
    unl = [[INDEX["heart"]] if lungs & set(np.unique(seg[max(0, z - 3):z + 4]).tolist()) else []
           for z in range(seg.shape[0])]
    return Case("A", ct.astype(np.float32), seg, sp, unl)


def _case_b() -> Case:
    seg, sp = _canonical_nifti(REF_DIR / FILES["B"][1])
    ct = _read_dicom_ct(REF_DIR / FILES["B"][0])
    if ct.shape != seg.shape:
        raise ValueError(f"case B: CT {ct.shape} and labels {seg.shape} differ")
    # no lung here: TotalSegmentator labels the lungs wherever they are, and the aerated
    # pieces of these slices are stomach and colon gas (a rule would call them lung)
    labels = map_labels(seg)
    return Case("B", ct.astype(np.float32), labels, sp, [[]] * seg.shape[0])


def _case_c() -> Case:
    ct_file = REF_DIR / FILES["C"][0]
    ct, sp = _canonical_nifti(ct_file)
    aorta, _ = _canonical_nifti(REF_DIR / FILES["C"][1])  # on the CT's own grid
    heart = _canonical_array(_on_grid(REF_DIR / FILES["C"][2], ct_file), ct_file)
    pa = _canonical_array(_on_grid(REF_DIR / FILES["C"][3], ct_file), ct_file)
    seg = np.zeros(ct.shape, np.uint8)
    zs = np.where((heart > 0).any(axis=(1, 2)))[0]
    low = int(zs.min()) + 10 if len(zs) else 0  # the upper abdomen shows below the heart
    seg[low:] = lung_sides(aerated_lung(ct[low:], sp), sp)
    seg[(heart > 0) & (pa == 0)] = INDEX["heart"]
    seg[aorta > 0] = INDEX["aorta"]
    chest = [INDEX[n] for n in ("lung_left", "lung_right", "vertebrae")]
    beneath = chest + [INDEX[n] for n in ("liver", "stomach", "spleen")]
    unl = [beneath if z < low else chest for z in range(ct.shape[0])]
    return Case("C", ct.astype(np.float32), seg, sp, unl, cropped=True, rule_lungs=True)


def aerated_lung(ct: np.ndarray, spacing_zyx) -> np.ndarray:
    """Aerated lung of a chest crop by rule (the crop's lungs are not outlined): air below
    -400 HU with the vessels inside it closed (3 mm), per axial slice the pieces of at least
    4 cm^2 whose median is lung-like (-960 to -600 HU: not the air outside the body, not the
    airways' lumen). :func:`lung_sides` tells left from right."""
    from scipy import ndimage

    air = ct < -400
    out = np.zeros(ct.shape, bool)
    px_cm2 = spacing_zyx[1] * spacing_zyx[2] / 100.0
    for z in range(ct.shape[0]):
        closed = ndimage.binary_closing(air[z], iterations=max(1, round(3 / spacing_zyx[1])))
        comp, n = ndimage.label(closed)
        if n:
            sizes = np.bincount(comp.ravel()) * px_cm2
            # lung parenchyma holds vessels and septa (median about -850 HU); the air outside
            # the body and in the airways is about -1000 HU
            median = np.array([-1000.0] + [float(np.median(ct[z][comp == i]))
                                           for i in range(1, n + 1)])
            keep = (sizes >= 4.0) & (median > -960) & (median < -600)
            keep[0] = False
            out[z] = keep[comp]
    return out


def lung_sides(lung: np.ndarray, spacing_zyx, band_mm: float = 10.0) -> np.ndarray:
    """Rule lung ``(z, y, x)`` bool -> labels: ``lung_right`` right of the midline (smaller x),
    ``lung_left`` beyond it, ``ANY_LUNG`` ("left or right") within ``band_mm`` of it, where the
    two lungs meet in front of and behind the mediastinum. The midline is the median, over the
    slices whose two largest aerated pieces are each at least 10 cm^2 and lie side by side,
    of the point halfway between the two pieces' facing edges (one scan: one midline)."""
    from scipy import ndimage

    px_cm2 = spacing_zyx[1] * spacing_zyx[2] / 100.0
    mids = []
    for z in range(lung.shape[0]):
        comp, n = ndimage.label(lung[z])
        if n < 2:
            continue
        sizes = np.bincount(comp.ravel())[1:] * px_cm2
        a, b = np.argsort(sizes)[::-1][:2] + 1
        if sizes[b - 1] < 10.0:
            continue
        xa, xb = (np.nonzero(comp == i)[1] for i in (a, b))
        if xa.mean() > xb.mean():
            xa, xb = xb, xa
        if xa.max() < xb.min():  # side by side: the right lung's edge, then the left's
            mids.append((xa.max() + xb.min()) / 2.0)
    mid = float(np.median(mids)) if mids else (lung.shape[2] - 1) / 2.0
    x = np.arange(lung.shape[2]) * spacing_zyx[2]
    side = np.where(x < mid * spacing_zyx[2] - band_mm, INDEX["lung_right"],
                    np.where(x > mid * spacing_zyx[2] + band_mm, INDEX["lung_left"], ANY_LUNG))
    return np.where(lung, side.astype(np.uint8)[None, None, :], np.uint8(0))


def load_cases() -> list[Case]:
    return [_case_a(), _case_b(), _case_c()]


def data_hashes() -> dict:
    return {f: path_sha256(REF_DIR / f) for files in FILES.values() for f in files}
