"""Label maps as NIfTI/NRRD files: read onto an image grid (checked or resampled), and written.

- ``read_labelmap(path, geometry, resample=False)`` returns ``(labels, table, warnings)``:
  labels (z, y, x) uint8 (uint16 when a value exceeds 255) on ``geometry``'s grid. The file's
  grid must match the image (shape exactly; spacing within 1e-3 relative; origin within
  0.01 mm; direction within 1e-4), else ``GeometryMismatch`` lists the differences, unless
  ``resample=True``: nearest-neighbour resampling onto the image grid with SimpleITK.
  Label names come from NRRD headers written by us or by 3D Slicer (``SegmentN_Name`` ...);
  a multi-component (layered) NRRD gives one label per segment/component.
- ``write_labelmap(labels, geometry, path, table=None)``: .nii/.nii.gz (nibabel, through
  ``nifti_writer``) or .nrrd (SimpleITK, gzip, label names/colours in the header), atomic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medviewer.core.atomic import atomic_path
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

from .labels_io_tables import make_table, table_entries

__all__ = ["GeometryMismatch", "read_labelmap", "write_labelmap", "geometry_differences",
           "resample_labels", "to_label_dtype"]

SPACING_RTOL = 1e-3
ORIGIN_ATOL_MM = 0.01
DIRECTION_ATOL = 1e-4
_NRRD = (".nrrd", ".nhdr")


class GeometryMismatch(ValueError):
    """A label map's grid differs from the image's; the message lists how."""


def _fmt(values, nd: int = 4) -> str:
    return "(" + ", ".join(f"{float(v):.{nd}g}" for v in values) + ")"


def _slice_origins(g: Geometry) -> np.ndarray:
    return g.index_to_lps(np.column_stack([np.zeros(g.shape[0]), np.zeros(g.shape[0]),
                                           np.arange(g.shape[0], dtype=float)]))


def geometry_differences(src: Geometry, dst: Geometry) -> list:
    """Human-readable differences between a label grid ``src`` and an image grid ``dst``."""
    out = []
    if tuple(src.shape) != tuple(dst.shape):
        out.append(f"shape {tuple(src.shape)} vs {tuple(dst.shape)} (z, y, x)")
    s, d = np.asarray(src.spacing), np.asarray(dst.spacing)
    if src.is_uneven or dst.is_uneven:
        if tuple(src.shape) == tuple(dst.shape):
            gap = np.abs(_slice_origins(src) - _slice_origins(dst)).max()
            if gap > ORIGIN_ATOL_MM:
                out.append(f"slice positions differ by up to {gap:.3g} mm (the image has "
                           f"{'uneven' if dst.is_uneven else 'even'} slice spacing)")
        s, d = s[:2], d[:2]
    if np.any(np.abs(s - d) > SPACING_RTOL * np.abs(d)):
        out.append(f"spacing {_fmt(src.spacing)} vs {_fmt(dst.spacing)} mm (x, y, z)")
    gap = float(np.abs(np.asarray(src.origin) - np.asarray(dst.origin)).max())
    if gap > ORIGIN_ATOL_MM:
        out.append(f"origin {_fmt(src.origin, 6)} vs {_fmt(dst.origin, 6)} mm (LPS), "
                   f"{gap:.3g} mm apart")
    if np.abs(src.direction_matrix - dst.direction_matrix).max() > DIRECTION_ATOL:
        out.append(f"orientation {src.orientation_code()} vs {dst.orientation_code()} "
                   f"(direction {_fmt(src.direction, 3)} vs {_fmt(dst.direction, 3)})")
    return out


def to_label_dtype(array: np.ndarray, name: str = "label map") -> np.ndarray:
    """uint8, or uint16 when needed; refuses negative or non-integer values."""
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name}: voxels of type {arr.dtype} are not labels")
    if arr.size == 0:
        return arr.astype(np.uint8)
    lo, hi = arr.min(), arr.max()
    if arr.dtype.kind == "f":
        if not (np.isfinite(lo) and np.isfinite(hi)) or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name}: non-integer values ({arr.dtype}); this is not a label map")
    if lo < 0:
        raise ValueError(f"{name}: negative values (min {lo}); this is not a label map")
    if hi > 65535:
        raise ValueError(f"{name}: label values up to {hi} exceed 65535")
    dtype = np.uint8 if hi <= 255 else np.uint16
    return arr if arr.dtype == dtype else arr.astype(dtype)


# ---------------------------------------------------------------------------- SimpleITK edge
def sitk_image(array: np.ndarray, g: Geometry):
    """``array`` (z, y, x) as a SimpleITK image placed on ``g`` (spacing, origin, direction)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(v) for v in g.spacing))
    img.SetOrigin(tuple(float(v) for v in g.origin))
    img.SetDirection(tuple(float(v) for v in g.direction))
    return img


def sitk_reference(g: Geometry, pixel=None):
    """An empty SimpleITK image on grid ``g`` (a Resample target); ``pixel`` default UInt8."""
    import SimpleITK as sitk

    ref = sitk.Image([int(v) for v in g.size_xyz], sitk.sitkUInt8 if pixel is None else pixel)
    ref.SetSpacing(tuple(float(v) for v in g.spacing))
    ref.SetOrigin(tuple(float(v) for v in g.origin))
    ref.SetDirection(tuple(float(v) for v in g.direction))
    return ref


def resample_labels(labels: np.ndarray, src: Geometry, dst: Geometry) -> np.ndarray:
    """Nearest-neighbour resampling of (z, y, x) labels from grid ``src`` onto ``dst``.

    Uneven target spacing is handled slice by slice (one reference plane per slice)."""
    import SimpleITK as sitk

    img = sitk_image(labels, src)
    f = sitk.ResampleImageFilter()
    f.SetInterpolator(sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(0)
    f.SetOutputPixelType(img.GetPixelID())
    if not dst.is_uneven:
        f.SetReferenceImage(sitk_reference(dst))
        return sitk.GetArrayFromImage(f.Execute(img))
    out = np.zeros(dst.shape, dtype=labels.dtype)
    origins = _slice_origins(dst)
    for k in range(dst.shape[0]):
        plane = Geometry(shape=(1,) + tuple(dst.shape[1:]), spacing=dst.spacing,
                         origin=tuple(origins[k]), direction=dst.direction)
        f.SetReferenceImage(sitk_reference(plane))
        out[k] = sitk.GetArrayFromImage(f.Execute(img))[0]
    return out


# ---------------------------------------------------------------------------- reading
def _nrrd_keys(p: Path) -> dict:
    import SimpleITK as sitk

    r = sitk.ImageFileReader()
    r.SetFileName(str(p))
    r.ReadImageInformation()
    keys = {k: r.GetMetaData(k) for k in r.GetMetaDataKeys()}
    keys["_ncomp"] = r.GetNumberOfComponents()
    keys["_dim"] = r.GetDimension()
    return keys


def _segments_from_keys(keys: dict) -> list:
    """3D Slicer / MedViewer NRRD segment keys -> [(index, name, rgb, layer, label_value)]."""
    out = []
    i = 0
    while f"Segment{i}_ID" in keys or f"Segment{i}_Name" in keys:
        name = keys.get(f"Segment{i}_Name", f"Segment {i + 1}")
        try:
            color = [float(c) for c in keys.get(f"Segment{i}_Color", "").split()]
        except ValueError:
            color = []
        layer = int(keys.get(f"Segment{i}_Layer", "0") or 0)
        value = int(keys.get(f"Segment{i}_LabelValue", str(i + 1)) or i + 1)
        out.append((i, name, [c * 255.0 for c in color] if len(color) == 3 else None,
                    layer, value))
        i += 1
    return out


def _read_layered(p: Path, segments: list, warnings: list):
    """A multi-component (or 4D) label file: one output label per segment/component."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(p))
    arr = sitk.GetArrayFromImage(img)
    if img.GetDimension() == 4:  # (c, z, y, x) as 4D -> components last
        arr = np.moveaxis(arr, 0, -1)
        g = Geometry(shape=arr.shape[:3], spacing=img.GetSpacing()[:3], origin=img.GetOrigin()[:3],
                     direction=tuple(np.asarray(img.GetDirection()).reshape(4, 4)[:3, :3].ravel()))
    else:
        g = Geometry(shape=arr.shape[:3], spacing=img.GetSpacing(), origin=img.GetOrigin(),
                     direction=img.GetDirection())
    ncomp = arr.shape[3]
    if not segments:
        segments = [(c, f"Label {c + 1}", None, c, None) for c in range(ncomp)]
    labels = np.zeros(arr.shape[:3], dtype=np.uint8 if len(segments) <= 255 else np.uint16)
    covered = np.zeros(arr.shape[:3], dtype=bool)
    entries, overlap = {}, 0
    for out_value, (_, name, color, layer, value) in enumerate(segments, start=1):
        comp = arr[..., min(layer, ncomp - 1)]
        mask = comp != 0 if value is None else comp == value
        overlap += int(np.count_nonzero(mask & covered))
        covered |= mask
        labels[mask] = out_value
        entries[out_value] = {"name": name, "color": color}
    if overlap:
        warnings.append(f"segments overlap in {overlap} voxels; the later segment wins")
    return labels, g, make_table(table_entries(entries))


def read_labelmap(path, geometry: Geometry, resample: bool = False):
    """Read a NIfTI/NRRD/MetaImage label map onto ``geometry``: (labels, table|None, warnings)."""
    from .volume_files import is_volume_file, read_volume_file

    p = Path(path)
    if not is_volume_file(p):
        raise ValueError(f"{p.name}: not a NIfTI/NRRD/MetaImage label map")
    warnings: list = []
    table = None
    keys = _nrrd_keys(p) if p.name.lower().endswith(_NRRD) and p.is_file() else {}
    segments = _segments_from_keys(keys)
    if keys and (keys["_ncomp"] > 1 or keys["_dim"] == 4):
        labels, src, table = _read_layered(p, segments, warnings)
    else:
        vol = read_volume_file(p)
        if vol.is_rgb:
            raise ValueError(f"{p.name}: a colour image is not a label map")
        warnings.extend(vol.warnings)
        labels, src = to_label_dtype(vol.array, p.name), vol.geometry
        if segments:
            table = make_table(table_entries({v: {"name": n, "color": c}
                                              for _, n, c, _, v in segments}))
    diffs = geometry_differences(src, geometry)
    if diffs:
        if not resample:
            raise GeometryMismatch(
                f"label map does not match the image: {'; '.join(diffs)}. Use resample=True "
                "(Labels > Import > Resample to image) to resample it (nearest neighbour)")
        before = set(np.unique(labels).tolist())
        labels = resample_labels(labels, src, geometry)
        after = set(np.unique(labels).tolist())
        warnings.append("label map resampled onto the image grid (nearest neighbour): "
                        + "; ".join(diffs))
        lost = sorted(before - after - {0})
        if lost:
            warnings.append(f"labels {', '.join(map(str, lost))} have no voxels on the image grid "
                            "after resampling")
    return np.ascontiguousarray(labels), table, warnings


# ---------------------------------------------------------------------------- writing
def _check(labels: np.ndarray, geometry: Geometry) -> np.ndarray:
    if labels.ndim != 3 or tuple(labels.shape) != tuple(geometry.shape):
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match the image "
                         f"{tuple(geometry.shape)}")
    return to_label_dtype(labels)


def _nrrd_meta(table) -> dict:
    meta = {}
    for i, e in enumerate(sorted(table_entries(table).values(), key=lambda e: e["value"])):
        meta[f"Segment{i}_ID"] = f"Segment_{e['value']}"
        meta[f"Segment{i}_Name"] = e["name"].replace("\n", " ")
        meta[f"Segment{i}_Color"] = " ".join(f"{c / 255.0:.6g}" for c in e["color"])
        meta[f"Segment{i}_LabelValue"] = str(e["value"])
        meta[f"Segment{i}_Layer"] = "0"
    return meta


def write_labelmap(labels: np.ndarray, geometry: Geometry, path, table=None) -> Path:
    """Write labels (z, y, x) on ``geometry`` to .nii/.nii.gz/.nrrd atomically; returns the path."""
    out = Path(path)
    name = out.name.lower()
    arr = _check(np.asarray(labels), geometry)
    if name.endswith((".nii", ".nii.gz")):
        from .nifti_writer import write_nifti

        # a view: Volume makes its array read-only and must not freeze the caller's labels
        return write_nifti(Volume(array=arr.view(), geometry=geometry, description="labels"), out)
    if not name.endswith(".nrrd"):
        raise ValueError(f"{out.name}: label maps are written as .nii, .nii.gz or .nrrd")
    if geometry.is_uneven:
        raise ValueError("slice spacing is uneven and NRRD cannot express it; resample first")
    import SimpleITK as sitk

    img = sitk_image(arr, geometry)
    for key, value in _nrrd_meta(table).items():
        img.SetMetaData(key, value)
    with atomic_path(out, ".nrrd") as tmp:
        sitk.WriteImage(img, str(tmp), True)
    return out

