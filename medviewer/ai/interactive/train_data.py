"""Training data of the learned promptable model: every labelled structure in
``../shared/data``, on axial, coronal and sagittal slices, turned into (input, target) pairs by
a click simulator with intensity and geometry augmentation. numpy/scipy/SimpleITK only.

Held out from training, for the benchmark (``benchmarks/interactive.py``):

- whole structure classes (:data:`HELD_OUT_CLASSES`, by name, in every case): organs, vessels,
  bone, muscle, bowel and the heart, so that "segment what I point at" is measured on kinds
  of structure the network never saw;
- whole cases (:data:`HELD_OUT_CASES`): TotalSegmentator's second CT (the 512² DICOM series),
  pyradiomics' second brain tumour and the breast lesion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np
from scipy import ndimage

from medviewer.ai.interactive.encoding import (SlicePrompts, Window, encode,
                                               fit_window, to_window, window_around)

__all__ = ["DATA", "HELD_OUT_CLASSES", "HELD_OUT_CASES", "Case", "load_training_cases",
           "SliceIndex", "Sampler", "MixedSampler", "case_files", "data_hashes",
           "training_data_available"]

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
TS = DATA / "totalseg" / "tests" / "reference_files"
PYRAD = DATA / "pyradiomics_data" / "data"
DCMQI = DATA / "dcmqi_seg_examples" / "data" / "segmentations"
MONAI = DATA / "monai_testing_data" / "tests" / "testing_data"
MNI = DATA / "nilearn_mni152"
LABELS = Path(__file__).resolve().parents[2] / "resources" / "labels"
if not LABELS.is_dir():  # the repository layout (resources/ beside medviewer/)
    LABELS = Path(__file__).resolve().parents[3] / "resources" / "labels"

HELD_OUT_CLASSES = ("spleen", "kidney_left", "gallbladder", "aorta",
                    "portal_vein_and_splenic_vein", "vertebrae_L3", "hip_left",
                    "gluteus_medius_left", "iliopsoas_left", "duodenum", "heart")
HELD_OUT_CASES = ("totalseg_ct_B", "pyradiomics_brain2", "pyradiomics_breast1")

MIN_AREA_PX = 16
MIN_AREA_MM2 = 40.0


def _csv_names(name: str) -> Dict[int, str]:
    out = {}
    for line in (LABELS / name).read_text().splitlines():
        if line[:1].isdigit():
            v, n = line.split(",", 1)
            out[int(v)] = n.split(",")[0].strip()
    return out


def case_files() -> Dict[str, dict]:
    """Every labelled case: image, label files (value -> name) and whether it is held out."""
    ct_names, mr_names = (_csv_names("totalsegmentator_total_ct.csv"),
                          _csv_names("totalsegmentator_total_mr.csv"))
    return {
        "totalseg_ct_A": {"image": TS / "example_ct.nii.gz",
                          "labels": [(TS / "example_seg_fast_force_split.nii.gz", ct_names)]},
        "totalseg_ct_A_tissue": {"image": TS / "example_ct_sm.nii.gz", "labels": [
            (TS / "example_seg_tissue_types" / f"{n}.nii.gz", {1: n})
            for n in ("skeletal_muscle", "subcutaneous_fat", "torso_fat")]},
        "totalseg_mr": {"image": TS / "example_mr_sm.nii.gz",
                        "labels": [(TS / "example_seg_mr.nii.gz", mr_names)]},
        "mni152": {"image": MNI / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                   "labels": [(MNI / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                               {"threshold": "grey_matter"}),
                              (MNI / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
                               {"threshold": "white_matter"})], "step": 3},
        "monai_anatomical": {"image": MONAI / "anatomical.nii",
                             "labels": [(MONAI / "anatomical_label.nii.gz", {1: "structure"})]},
        "dcmqi_ct_3slice": {"image": DCMQI / "ct-3slice", "labels": [
            (DCMQI / "liver_seg.nrrd", {1: "liver"}), (DCMQI / "spine_seg.nrrd", {2: "spine"}),
            (DCMQI / "heart_seg.nrrd", {3: "heart"})]},
        "pyradiomics_brain1": {"image": PYRAD / "brain1_image.nrrd",
                               "labels": [(PYRAD / "brain1_label.nrrd", {1: "brain_tumour"})]},
        "pyradiomics_prostate": {"image": PYRAD / "prostate_phantom_subvolume.nrrd",
                                 "labels": [(PYRAD / "prostate_phantom_subvolume-label.nrrd",
                                             {1: "phantom_1", 7: "phantom_7", 8: "phantom_8",
                                              9: "phantom_9"})]},
        "totalseg_ct_B": {"image": TS / "example_ct_dicom",
                          "labels": [(TS / "example_seg_dicom.nii.gz", ct_names)]},
        "pyradiomics_brain2": {"image": PYRAD / "brain2_image.nrrd",
                               "labels": [(PYRAD / "brain2_label.nrrd", {1: "brain_tumour"})]},
        "pyradiomics_breast1": {"image": PYRAD / "breast1_image.nrrd",
                                "labels": [(PYRAD / "breast1_label.nrrd",
                                            {1: "breast_lesion"})]},
    }


@dataclass
class Case:
    """One image (z, y, x) with its structures as boolean-mask sources."""

    name: str
    image: np.ndarray
    spacing_zyx: tuple
    structures: Dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool (z, y, x)
    step: int = 1


def _read(path: Path):
    import SimpleITK as sitk

    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def load_case(name: str, spec: dict) -> Case:
    import SimpleITK as sitk

    img = _read(Path(spec["image"]))
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    sx, sy, sz = img.GetSpacing()
    case = Case(name, arr, (sz, sy, sx), step=int(spec.get("step", 1)))
    for path, names in spec["labels"]:
        lab = sitk.Resample(sitk.ReadImage(str(path)), img, sitk.Transform(),
                            sitk.sitkNearestNeighbor, 0)
        larr = sitk.GetArrayFromImage(lab)
        if "threshold" in names:
            case.structures[names["threshold"]] = larr > 0.5 * float(larr.max())
            continue
        for value in np.unique(larr):
            if value and int(value) in names:
                case.structures[names[int(value)]] = larr == value
    return case


def load_training_cases(log=print) -> List[Case]:
    """The cases used for training (held-out cases and classes removed)."""
    out = []
    for name, spec in case_files().items():
        if name in HELD_OUT_CASES:
            continue
        case = load_case(name, spec)
        for cls in HELD_OUT_CLASSES:
            case.structures.pop(cls, None)
        log(f"{name}: {case.image.shape} {len(case.structures)} structures")
        out.append(case)
    return out


def training_data_available() -> bool:
    """Whether every training case's files are there (a fine-tune can replay them)."""
    for name, spec in case_files().items():
        if name in HELD_OUT_CASES:
            continue
        if not all(Path(p).exists() for p in [spec["image"]] + [q for q, _ in spec["labels"]]):
            return False
    return True


def data_hashes() -> Dict[str, str]:
    from medviewer.ai.cards import file_sha256

    out = {}
    for name, spec in case_files().items():
        paths = [Path(spec["image"])] + [Path(p) for p, _ in spec["labels"]]
        for p in paths:
            files = sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]
            for f in files:
                out[str(f.relative_to(DATA.resolve()) if f.is_absolute() and
                        str(f).startswith(str(DATA.resolve())) else f.name)] = file_sha256(f)
    return out


PLANES = ("axial", "coronal", "sagittal")


def plane_slice(arr: np.ndarray, plane: str, k: int) -> np.ndarray:
    return arr[k] if plane == "axial" else arr[:, k, :] if plane == "coronal" else arr[:, :, k]


def plane_spacing(spacing_zyx, plane: str) -> tuple:
    sz, sy, sx = spacing_zyx
    return (sy, sx) if plane == "axial" else (sz, sx) if plane == "coronal" else (sz, sy)


@dataclass
class SliceIndex:
    """Which (case, structure, plane) has which usable slices."""

    entries: list  # (case index, structure name, plane, slice indices array)

    @classmethod
    def build(cls, cases: List[Case]) -> "SliceIndex":
        entries = []
        for ci, case in enumerate(cases):
            for name, mask in case.structures.items():
                for axis, plane in enumerate(PLANES):
                    if plane != "axial" and (mask.shape[0] < 12 or
                                             max(case.spacing_zyx) > 3.5 * min(case.spacing_zyx)):
                        continue
                    sp = plane_spacing(case.spacing_zyx, plane)
                    other = tuple(a for a in range(3) if a != axis)
                    area = mask.sum(axis=other)
                    ok = (area >= MIN_AREA_PX) & (area * sp[0] * sp[1] >= MIN_AREA_MM2)
                    ks = np.flatnonzero(ok)[:: case.step]
                    if len(ks):
                        entries.append((ci, name, plane, ks))
        return cls(entries)


def _interior_point(mask: np.ndarray, spacing, rng, centre_bias: float = 2.0):
    dist = ndimage.distance_transform_edt(mask, sampling=spacing)
    if rng.random() < 0.3:
        return tuple(int(v) for v in np.unravel_index(int(np.argmax(dist)), mask.shape))
    w = dist.ravel() ** centre_bias
    if w.sum() <= 0:
        return tuple(int(v) for v in np.argwhere(mask)[0])
    i = rng.choice(w.size, p=w / w.sum())
    return tuple(int(v) for v in np.unravel_index(int(i), mask.shape))


def _error_clicks(prev: np.ndarray, target: np.ndarray, spacing, n: int, rng):
    """Up to ``n`` clicks at the centres of the largest error regions (with some jitter)."""
    pos, neg = [], []
    regions = []
    for err, positive in ((target & ~prev, True), (prev & ~target, False)):
        lab, k = ndimage.label(err)
        if k:
            sizes = ndimage.sum_labels(err, lab, np.arange(1, k + 1))
            for i in np.argsort(sizes)[::-1][:n]:
                regions.append((float(sizes[i]), lab == i + 1, positive))
    regions.sort(key=lambda r: -r[0])
    for size, region, positive in regions[:n]:
        if size < 4:
            continue
        p = _interior_point(region, spacing, rng, centre_bias=3.0)
        (pos if positive else neg).append(p)
    return pos, neg


def _corrupt(target: np.ndarray, spacing, rng, click=None) -> np.ndarray:
    """A plausible imperfect result to correct: grown, shrunk, shifted, cut, with a blob, or
    only a disc around the first click (what a first guess on a large object looks like)."""
    m = target.copy()
    px = max(1, int(round(rng.uniform(1.0, 6.0) / min(spacing))))
    kind = rng.integers(7)
    if kind >= 5 and click is not None:
        yy, xx = np.ogrid[:m.shape[0], :m.shape[1]]
        radius = np.sqrt(target.sum() / np.pi) * rng.uniform(0.2, 0.9)
        disc = (yy - click[0]) ** 2 + (xx - click[1]) ** 2 <= radius * radius
        return disc & target if kind == 5 else disc
    kind = min(kind, 4)
    if kind == 0:
        m = ndimage.binary_dilation(m, iterations=px)
    elif kind == 1:
        m = ndimage.binary_erosion(m, iterations=px)
    elif kind == 2:
        m = ndimage.shift(m.astype(np.float32), rng.integers(-px * 2, px * 2 + 1, 2), order=0) > 0.5
    elif kind == 3:  # cut off a part beyond a random line
        ys, xs = np.nonzero(m)
        if len(ys):
            a = rng.uniform(0, 2 * np.pi)
            proj = (np.arange(m.shape[0])[:, None] * np.cos(a)
                    + np.arange(m.shape[1])[None, :] * np.sin(a))
            t = np.quantile((ys * np.cos(a) + xs * np.sin(a)), rng.uniform(0.6, 0.95))
            m &= proj <= t
    else:  # add a blob next to the object
        ys, xs = np.nonzero(ndimage.binary_dilation(m, iterations=px) & ~m)
        if len(ys):
            i = rng.integers(len(ys))
            yy, xx = np.ogrid[:m.shape[0], :m.shape[1]]
            r = rng.uniform(2, 4) * px
            m |= (yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= r * r
    return m


class Sampler:
    """Random (input, target) training pairs on the window grid."""

    def __init__(self, cases: List[Case], seed: int = 0):
        self.cases = cases
        self.index = SliceIndex.build(cases)
        self.rng = np.random.default_rng(seed)
        if not self.index.entries:
            raise ValueError("no usable labelled slices")

    def sample(self):
        rng = self.rng
        ci, name, plane, ks = self.index.entries[rng.integers(len(self.index.entries))]
        case = self.cases[ci]
        k = int(ks[rng.integers(len(ks))])
        mask3 = case.structures[name]
        image = plane_slice(case.image, plane, k)
        target = plane_slice(mask3, plane, k)
        sp = plane_spacing(case.spacing_zyx, plane)
        mode = rng.choice(["first", "correct", "box", "scribble", "propagate"],
                          p=[0.3, 0.3, 0.12, 0.08, 0.2])
        prev = None
        pos, neg, boxes = [], [], []
        if mode == "propagate":
            axis = PLANES.index(plane)
            nk = k + int(rng.choice([-2, -1, 1, 2]))
            if 0 <= nk < mask3.shape[axis] and plane_slice(mask3, plane, nk).any():
                prev = plane_slice(mask3, plane, nk)
            else:
                mode = "first"
        if mode in ("first", "correct", "scribble"):
            pos.append(_interior_point(target, sp, rng))
        if mode == "first":
            for _ in range(int(rng.choice([0, 0, 1, 2]))):
                pos.append(_interior_point(target, sp, rng, 1.0))
        if mode == "correct":
            prev = _corrupt(target, sp, rng, pos[0])
            p2, n2 = _error_clicks(prev, target, sp, int(rng.integers(1, 4)), rng)
            pos += p2
            neg += n2
        if mode == "scribble":
            for _ in range(int(rng.integers(2, 8))):
                pos.append(_interior_point(target, sp, rng, 3.0))
        if mode == "box":
            ys, xs = np.nonzero(target)
            h, w = int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1
            j = lambda s: int(round(rng.uniform(-0.08, 0.12) * s))
            boxes.append((ys.min() - j(h), xs.min() - j(w), ys.max() + j(h), xs.max() + j(w)))
            if rng.random() < 0.4:
                pos.append(_interior_point(target, sp, rng))
        if mode in ("first", "box") and rng.random() < 0.35:
            ring = ndimage.binary_dilation(target, iterations=max(1, int(8 / min(sp)))) & ~target
            if ring.any():
                cand = np.argwhere(ring)
                for _ in range(int(rng.integers(1, 3))):
                    neg.append(tuple(int(v) for v in cand[rng.integers(len(cand))]))
        window = self._window(target, prev, pos, boxes, sp, mode, image.shape)
        img_win = self._augment(to_window(image, window, sp))
        x = encode(image, SlicePrompts(pos, neg, boxes), sp, window, prev, image_win=img_win)
        y = to_window(target.astype(np.float32), window, sp, outside=0.0) > 0.5
        return self._geometry(x, y.astype(np.float32))

    def _window(self, target, prev, pos, boxes, sp, mode, shape) -> Window:
        rng = self.rng
        extent = max(shape[0] * sp[0], shape[1] * sp[1])
        if mode == "first" and rng.random() < 0.35:
            side = min(rng.uniform(60.0, 200.0), extent * 1.1)
            return window_around(pos[:1], sp, side)
        base = fit_window(target if prev is None or rng.random() < 0.5 else prev, pos, sp,
                          margin=1.0, boxes=boxes)
        f = rng.uniform(1.2, 2.5) if rng.random() < 0.8 else rng.uniform(2.5, 6.0)
        side = max(base.side * f, 24.0)
        side = min(side, max(extent * 1.1, base.side * 1.2))
        jy, jx = rng.uniform(-0.15, 0.15, 2) * side
        return Window(base.cy + jy, base.cx + jx, side)

    def _augment(self, img: np.ndarray) -> np.ndarray:
        rng = self.rng
        lo, hi = np.percentile(img, (0.5, 99.5))
        span = max(float(hi - lo), 1e-6)
        u = np.clip((img - lo) / span, 0, 1)
        if rng.random() < 0.5:
            u = u ** np.exp(rng.uniform(-0.5, 0.5))
        if rng.random() < 0.1:
            u = 1.0 - u
        if rng.random() < 0.2:
            u = ndimage.gaussian_filter(u, rng.uniform(0.3, 1.2))
        if rng.random() < 0.1:  # speckle, as in ultrasound
            u = u * rng.gamma(4.0, 0.25, u.shape)
        if rng.random() < 0.5:
            u = u + rng.normal(0, rng.uniform(0.0, 0.05), u.shape)
        return (u * span + lo).astype(np.float32)

    def _geometry(self, x: np.ndarray, y: np.ndarray):
        rng = self.rng
        k = int(rng.integers(4))
        x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def batch(self, n: int):
        xs, ys = zip(*(self.sample() for _ in range(n)))
        return np.stack(xs), np.stack(ys)[:, None]


class MixedSampler:
    """Batches from two samplers: each sample from ``other`` with probability ``fraction``
    (a fine-tune's new cases mixed with a replay of the original training data)."""

    def __init__(self, main: Sampler, other: Sampler, fraction: float, seed: int = 0):
        if not 0.0 <= float(fraction) < 1.0:
            raise ValueError(f"the replay fraction must be in [0, 1), got {fraction}")
        self.main, self.other, self.fraction = main, other, float(fraction)
        self.rng = np.random.default_rng(seed + 7919)
        self.entries = main.index.entries + other.index.entries

    def batch(self, n: int):
        xs, ys = zip(*((self.other if self.rng.random() < self.fraction else self.main).sample()
                       for _ in range(n)))
        return np.stack(xs), np.stack(ys)[:, None]
