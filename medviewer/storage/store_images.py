"""Image snapshots in the label store: ``images/<hash>.nii.gz`` + an ``images`` table row.

Training must not depend on the user's original files still being where they were, so the
first time a record is stored for an image the app also keeps a compressed NIfTI copy of its
voxels (dtype kept, affine from the geometry; grey 2D images are (1, y, x)). Written once per
image hash: the file first (atomically), then the row (INSERT OR IGNORE), so concurrent
writers of the same image are harmless. Source paths stay in the local database only.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np

from medviewer.core.atomic import atomic_open
from medviewer.core.geometry import Geometry
from medviewer.core.hashing import image_hash as compute_image_hash
from medviewer.core.volume import Volume

IMAGES_DIR = "images"
GZIP_LEVEL = 1
# numpy dtypes NIfTI-1 cannot hold -> what we write instead (the original is kept in meta)
_WIDEN = {np.dtype(bool): np.dtype(np.uint8), np.dtype(np.float16): np.dtype(np.float32),
          np.dtype(np.int64): np.dtype(np.float64), np.dtype(np.uint64): np.dtype(np.float64)}

IMAGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_hash TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    meta TEXT NOT NULL,
    source_paths TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS images_no_update BEFORE UPDATE ON images
BEGIN SELECT RAISE(ABORT, 'image snapshots are written once: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS images_no_delete BEFORE DELETE ON images
BEGIN SELECT RAISE(ABORT, 'image snapshots are written once: DELETE is not allowed'); END;
"""


def write_image_nifti(path, array: np.ndarray, affine_ras) -> None:
    """Write a (z, y, x) or (z, y, x, 3) array as gzip'ed NIfTI-1 atomically, values as-is."""
    arr = np.asarray(array)
    arr = arr.astype(_WIDEN.get(arr.dtype, arr.dtype), copy=False)
    if arr.ndim == 3:
        data = np.ascontiguousarray(arr).T
    elif arr.ndim == 4:
        data = np.asfortranarray(arr.transpose(2, 1, 0, 3))
    else:
        raise ValueError(f"image snapshots must be 3D or 4D RGB, got shape {arr.shape}")
    img = nib.Nifti1Image(data, np.asarray(affine_ras, dtype=float), dtype=arr.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
            img.to_file_map({"image": nib.FileHolder(fileobj=gz)})


def read_image_nifti(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a snapshot -> (array (z, y, x) or (z, y, x, 3), RAS affine)."""
    img = nib.load(os.fspath(path))
    data = np.asarray(img.dataobj.get_unscaled())
    if data.ndim == 3:
        arr = np.ascontiguousarray(data.T)
    elif data.ndim == 4:
        arr = np.ascontiguousarray(data.transpose(2, 1, 0, 3))
    else:
        raise ValueError(f"image snapshot {os.path.basename(path)} has shape {data.shape}")
    return arr, np.asarray(img.affine, dtype=float)


class ImagesMixin:
    """LabelStore methods for image snapshots (needs ``root``, ``_db``, ``_lock``, ``_wrote``, ``check_writable``)."""

    root: Path

    def _image_row(self, image_hash: str):
        with self._lock:
            return self._db.execute(
                "SELECT file, meta, source_paths, created_at FROM images WHERE image_hash = ?",
                (str(image_hash),)).fetchone()

    def add_image(self, volume: Volume, image_hash: Optional[str] = None,
                  source_paths=()) -> str:
        """Keep a snapshot of ``volume`` under its content hash (once); returns the hash."""
        from medviewer.storage.store import StoreError, utc_now_iso

        h = image_hash or compute_image_hash(volume)
        if not isinstance(h, str) or not h or "/" in h or ":" in h:
            raise StoreError("image_hash must be a plain hash string")
        if self.has_image(h):
            return h
        self.check_writable()
        rel = f"{IMAGES_DIR}/{h}.nii.gz"
        arr = np.asarray(volume.array)
        write_image_nifti(self.root / rel, arr, volume.geometry.affine_ras())
        self._wrote(self.root / rel)
        meta = {"modality": str(volume.modality or ""), "invert": bool(volume.invert),
                "shape": [int(s) for s in arr.shape], "dtype": str(arr.dtype),
                "units": str(volume.units or ""), "geometry": volume.geometry.to_dict()}
        if (volume.meta or {}).get("spacing_unknown"):
            meta["spacing_unknown"] = True  # the reader assumed 1 mm (see io.dicom_reader)
        window = getattr(volume, "window", None)
        if window is not None:  # the series' own window: a classifier's input goes through it
            meta["window"] = [float(window.center), float(window.width)]
        paths = [os.fspath(p) for p in (source_paths or ())]
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO images (image_hash, file, meta, source_paths, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (h, rel, json.dumps(meta), json.dumps(paths), utc_now_iso()))
        return h

    def has_image(self, image_hash: str) -> bool:
        """True when a snapshot row exists and its file is present."""
        return self.image_file(image_hash) is not None

    def image_file(self, image_hash: str) -> Optional[Path]:
        """The snapshot file of an image, None when there is none (or it went missing)."""
        row = self._image_row(image_hash)
        if row is None:
            return None
        path = self.root / row[0]
        return path if path.is_file() else None

    def image_info(self, image_hash: str) -> Optional[dict]:
        """meta (modality, invert, shape, dtype, units, geometry, window when the series has
        one) + source_paths + file
        (relative to the workspace) + path (absolute) + created_at; None when unknown."""
        row = self._image_row(image_hash)
        if row is None:
            return None
        info = dict(json.loads(row[1]))
        info.update(source_paths=json.loads(row[2]), file=row[0],
                    path=str(self.root / row[0]), created_at=row[3])
        return info

    def image_hashes(self) -> list[str]:
        """Every image with a snapshot row, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT image_hash FROM images ORDER BY rowid").fetchall()
        return [r[0] for r in rows]

    def load_image(self, image_hash: str) -> Volume:
        """The snapshot as a Volume (same voxels, dtype and geometry as when it was stored)."""
        from medviewer.storage.store import StoreError

        info = self.image_info(image_hash)
        path = self.image_file(image_hash)
        if info is None or path is None:
            raise StoreError("no image snapshot for this image hash")
        arr, affine = read_image_nifti(path)
        dtype = np.dtype(info.get("dtype", str(arr.dtype)))
        if arr.dtype != dtype:
            arr = arr.astype(dtype)
        g = info.get("geometry")
        if g:
            geom = Geometry(shape=tuple(g["shape_zyx"]), spacing=tuple(g["spacing_xyz"]),
                            origin=tuple(g["origin_lps"]),
                            direction=tuple(np.asarray(g["direction_lps"]).ravel()),
                            slice_offsets=(tuple(g["slice_offsets_mm"])
                                           if "slice_offsets_mm" in g else None))
        else:
            geom = Geometry.from_affine_ras(affine, arr.shape[:3])
        return Volume(arr, geom, modality=info.get("modality", ""),
                      units=info.get("units", ""), invert=bool(info.get("invert", False)),
                      description="image snapshot", source_paths=[str(path)],
                      meta={"spacing_unknown": True} if info.get("spacing_unknown") else {})
