"""Small real training manifests for the fine-tuning tests (no label store needed).

Segmentation: TotalSegmentator's example_ct.nii.gz (112 slices, 3 mm) in MedViewer's canonical
array orientation with its reference labels mapped to ct-abdomen-organs' labels, stored as a
store would (images/<hash>.nii.gz, arrays/<id>.nii.gz). The starter was trained on z 82..111
(example_ct_sm), so the slices used here come from z 56..81. Classification: PneumoniaMNIST
train-split images in a shifted domain (14 px resolution, low contrast, gamma).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from medviewer.core.manifest import Manifest, ManifestEntry, sha256_file, split_unit

REPO = Path(__file__).resolve().parents[3]
REF_DIR = REPO / ".." / "shared" / "data" / "totalseg" / "tests" / "reference_files"
PNEUMONIA = REPO / ".." / "shared" / "data" / "medmnist_pneumonia" / \
    "pneumoniamnist_reconstructed_full.npz"


def _write_nifti(path: Path, arr_zyx: np.ndarray, spacing_zyx=(3.0, 3.0, 3.0)) -> str:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    aff = np.diag([-spacing_zyx[2], -spacing_zyx[1], spacing_zyx[0], 1.0])  # LPS -> RAS
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr_zyx).T, aff), str(path))
    return sha256_file(path)


def _entry(unit, split, image, image_sha, image_hash, target, rid, meta=None) -> ManifestEntry:
    return ManifestEntry(unit=unit, split=split, image=image, image_sha256=image_sha,
                         image_hash=image_hash, image_meta=meta or {"modality": "CT",
                                                                  "invert": False},
                         tag="corrected", record_id=rid, parent_record_id=None,
                         predicted_by=None, target=target)


def seg_workspace(ws: Path, train_slices, val_slices, model="ct-abdomen-organs",
                  by_slab: bool = False) -> Path:
    """Write a segmentation manifest (one train and one val entry; ``by_slab``: one entry per
    slab of 8 slices, as the builder makes them) into ``ws``; its path."""
    from medviewer.ai.starters import ct_data

    ct, spacing = ct_data._canonical_nifti(REF_DIR / "example_ct.nii.gz")
    seg, _ = ct_data._canonical_nifti(REF_DIR / "example_seg_fast_force_split.nii.gz")
    labels = ct_data._map_labels(seg)
    h = hashlib.sha256(ct.tobytes()).hexdigest()[:32]
    img_rel, lab_rel = f"images/{h}.nii.gz", "arrays/rec1.nii.gz"
    img_sha = _write_nifti(ws / img_rel, ct.astype(np.int16), spacing)
    lab_sha = _write_nifti(ws / lab_rel, labels.astype(np.uint8), spacing)
    values = {name: i for i, name in enumerate(ct_data.LABELS) if i}
    entries = []
    for split, all_zs in (("train", train_slices), ("val", val_slices)):
        groups: dict = {}
        for z in all_zs:
            groups.setdefault(split_unit(h, z) if by_slab else split_unit(h, all_zs[0]),
                              []).append(int(z))
        for unit, zs in groups.items():
            target = {"labels": lab_rel, "labels_sha256": lab_sha, "slices": list(zs),
                      "label_values": values}
            entries.append(_entry(unit, split, img_rel, img_sha, h, target, f"rec-{split}"))
    man = Manifest(model=model, task="segmentation", labels=list(ct_data.LABELS),
                   entries=entries, root="../..")
    return man.save(ws / "training" / model / "manifest-test.json")


def shift_domain(images: np.ndarray) -> np.ndarray:
    """PneumoniaMNIST uint8 (N, 28, 28) -> a shifted domain: 14 px, low contrast, gamma."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(images.astype(np.float32))[:, None] / 255.0
    t = F.interpolate(F.interpolate(t, size=(14, 14), mode="area"), size=(28, 28),
                      mode="bilinear", align_corners=False)
    a = 0.35 + 0.3 * t[:, 0].clamp(0, 1).numpy() ** 2.0
    return np.round(a * 255).astype(np.uint8)


def cls_workspace(ws: Path, n_train: int, n_val: int, seed: int = 0,
                  model="pneumonia-cxr") -> Path:
    """A classification manifest of shifted PneumoniaMNIST train-split images (validation:
both classes equally)."""
    with np.load(PNEUMONIA) as d:
        x, y = d["train_images"], d["train_labels"].reshape(-1)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), n_train + n_val, replace=False)
    # the validation images: both classes, half each (the gate needs every class judged)
    rest = np.setdiff1d(np.arange(len(x)), idx[:n_train])
    val = [rng.choice(rest[y[rest] == c], n_val // 2 + (c == 1) * (n_val % 2), replace=False)
           for c in (0, 1)]
    idx = np.concatenate([idx[:n_train], np.concatenate(val)])
    imgs = shift_domain(x[idx])
    names = ["normal", "pneumonia"]
    entries = []
    for k, (im, lab) in enumerate(zip(imgs, y[idx])):
        h = hashlib.sha256(im.tobytes() + bytes([k % 256])).hexdigest()[:32]
        rel = f"images/{h}.nii.gz"
        sha = _write_nifti(ws / rel, im[None], (1.0, 1.0, 1.0))
        split = "train" if k < n_train else "val"
        entries.append(_entry(h, split, rel, sha, h, {"class": names[int(lab)], "slice": 0},
                              f"rec-{k}", {"modality": "DX", "invert": False,
                                           "shape": [1, 28, 28]}))
    man = Manifest(model=model, task="classification", labels=names, entries=entries,
                   root="../..")
    return man.save(ws / "training" / model / "manifest-test.json")
