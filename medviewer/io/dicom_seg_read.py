"""Reading DICOM Segmentations (BINARY, FRACTIONAL, LABELMAP) onto an image grid.

Frames are placed by their Image Position (Patient) on the target grid (the referenced
series' geometry); frames without positions are placed by their referenced source image
(``source_paths``). Without either, the SEG's own grid is used (highdicom's volume geometry,
z along the slice normal as our DICOM loader does). Fractional frames count as inside where
the value is at least half the maximum. In a single label map a later segment wins where
segments overlap; ``read_seg_segments`` keeps every segment's own mask.
"""
from __future__ import annotations

import re
import warnings as _warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from medviewer.core.geometry import Geometry

from .labels_io_tables import make_table, table_entries

__all__ = ["read_seg", "read_seg_segments", "seg_geometry", "seg_referenced_series",
           "SEG_SOP_CLASSES"]

SEG_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4": "SEG", "1.2.840.10008.5.1.4.1.1.66.7": "SEG"}
_VALUE_RE = re.compile(r"^MedViewer label value (\d+)$")
_OFFSET_TOL = 0.05  # voxels: how far a frame may sit from a voxel position and still be placed


@dataclass
class _Frame:
    index: int
    segment: Optional[int]  # None for LABELMAP frames
    ipp: Optional[np.ndarray]
    refs: list  # referenced SOP Instance UIDs


def _open(path):
    import pydicom

    p = Path(path)
    try:
        ds = pydicom.dcmread(str(p))
    except Exception as exc:
        raise ValueError(f"{p.name}: not a readable DICOM file ({type(exc).__name__})") from None
    if str(ds.get("SOPClassUID", "")) not in SEG_SOP_CLASSES:
        raise ValueError(f"{p.name}: not a DICOM Segmentation (modality "
                         f"{ds.get('Modality', '?')})")
    if "PixelData" not in ds:
        raise ValueError(f"{p.name}: the segmentation has no pixel data")
    return ds


def _group(ds, i: int, name: str):
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is not None and i < len(per) and name in per[i] and len(per[i][name].value):
        return per[i][name][0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and name in shared[0] and len(shared[0][name].value):
        return shared[0][name][0]
    return None


def _frames(ds) -> list:
    labelmap = ds.get("SegmentationType", "") == "LABELMAP"
    out = []
    for i in range(int(ds.get("NumberOfFrames", 1) or 1)):
        ident = _group(ds, i, "SegmentIdentificationSequence")
        segment = None if labelmap or ident is None else int(ident.ReferencedSegmentNumber)
        pos = _group(ds, i, "PlanePositionSequence")
        ipp = (np.asarray([float(v) for v in pos.ImagePositionPatient])
               if pos is not None and "ImagePositionPatient" in pos else None)
        refs = []
        deriv = _group(ds, i, "DerivationImageSequence")
        for src in (deriv.get("SourceImageSequence", []) if deriv is not None else []):
            refs.append(str(src.ReferencedSOPInstanceUID))
        out.append(_Frame(i, segment, ipp, refs))
    if not labelmap and any(f.segment is None for f in out):
        raise ValueError("segmentation frames without a segment number")
    return out


def _segments(ds) -> dict:
    """{segment number: (label value, name, rgb)} for the non-background segments."""
    labelmap = ds.get("SegmentationType", "") == "LABELMAP"
    padding = int(ds.get("PixelPaddingValue", 0)) if labelmap else None
    items = []
    for s in ds.get("SegmentSequence", []):
        number = int(s.SegmentNumber)
        if labelmap and number in (0, padding):
            continue
        items.append((number, str(s.get("SegmentLabel", "") or f"Segment {number}"),
                      _rgb(s.get("RecommendedDisplayCIELabValue")),
                      _VALUE_RE.match(str(s.get("SegmentDescription", "")).strip())))
    if items and all(m is not None for *_, m in items) and \
            len({int(m.group(1)) for *_, m in items}) == len(items):
        return {n: (int(m.group(1)), name, rgb) for n, name, rgb, m in items}
    return {n: (n, name, rgb) for n, name, rgb, _ in items}


def _rgb(lab) -> Optional[tuple]:
    if lab is None or len(lab) != 3:
        return None
    from highdicom.color import CIELabColor

    try:
        rgb = CIELabColor.from_dicom_value([int(v) for v in lab]).to_rgb(clip=True)
    except (ValueError, TypeError):
        return None
    return tuple(int(round(float(c))) for c in rgb)


def _geometry_from_seg(ds) -> Geometry:
    import highdicom as hd

    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        seg = hd.seg.Segmentation.from_dataset(ds, copy=True)
        vg = seg.get_volume_geometry()
    if vg is None:
        raise ValueError("the segmentation's frames do not form a regular volume; give the "
                         "referenced series' geometry to place them")
    d = np.asarray(vg.direction, dtype=float)[:, [2, 1, 0]]  # (slice,row,col) -> (x,y,z)
    spacing = tuple(float(v) for v in vg.spacing)[::-1]
    origin = np.asarray(vg.position, dtype=float)
    shape = tuple(int(v) for v in vg.spatial_shape)
    if float(np.dot(d[:, 2], np.cross(d[:, 0], d[:, 1]))) < 0:  # z along the slice normal
        origin = origin + (shape[0] - 1) * spacing[2] * d[:, 2]
        d[:, 2] = -d[:, 2]
    return Geometry(shape=shape, spacing=spacing, origin=tuple(origin),
                    direction=tuple((d + 0.0).ravel()))


def seg_geometry(path) -> Geometry:
    """The grid the SEG's own frames describe (when they form a regular volume)."""
    return _geometry_from_seg(_open(path))


def seg_referenced_series(path) -> list:
    """Series Instance UIDs a SEG references (header only; for matching it to a loaded series)."""
    import pydicom

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    return [str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])
            if "SeriesInstanceUID" in item]


def _uid_slices(source_paths) -> dict:
    import pydicom

    out = {}
    for k, p in enumerate(source_paths or []):
        try:
            ds = pydicom.dcmread(str(p), stop_before_pixels=True,
                                 specific_tags=["SOPInstanceUID"])
        except Exception:
            continue
        uid = str(ds.get("SOPInstanceUID", ""))
        if uid:
            out.setdefault(uid, k)
    return out


def _check_plane(ds, geometry: Geometry) -> None:
    orient = _group(ds, 0, "PlaneOrientationSequence")
    measures = _group(ds, 0, "PixelMeasuresSequence")
    d = geometry.direction_matrix
    if orient is not None and "ImageOrientationPatient" in orient:
        iop = np.asarray([float(v) for v in orient.ImageOrientationPatient])
        if np.abs(iop[:3] - d[:, 0]).max() > 1e-3 or np.abs(iop[3:] - d[:, 1]).max() > 1e-3:
            raise ValueError("the segmentation's planes are oriented differently from the "
                             "image; it does not belong to this image grid")
    if measures is not None and "PixelSpacing" in measures:
        row_sp, col_sp = (float(v) for v in measures.PixelSpacing)
        if (abs(row_sp - geometry.spacing[1]) > 1e-3 * geometry.spacing[1]
                or abs(col_sp - geometry.spacing[0]) > 1e-3 * geometry.spacing[0]):
            raise ValueError(f"the segmentation's pixel spacing ({row_sp:g}, {col_sp:g}) differs "
                             f"from the image's ({geometry.spacing[1]:g}, "
                             f"{geometry.spacing[0]:g})")


def _placements(ds, frames: list, geometry: Optional[Geometry], source_paths,
                warnings: list) -> tuple:
    """(target shape, {frame index: (slice, row offset, col offset)})."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    uid_map = _uid_slices(source_paths) if source_paths else {}
    if geometry is None and not uid_map and any(f.ipp is None for f in frames):
        raise ValueError("the segmentation frames have no positions: give the referenced "
                         "series' source files")
    if geometry is None and not uid_map:
        geometry = _geometry_from_seg(ds)
    if geometry is not None:
        _check_plane(ds, geometry)
        shape = tuple(geometry.shape)
    else:
        shape = (len(source_paths), rows, cols)
    out, outside, unplaced, disagree = {}, 0, 0, 0
    for f in frames:
        by_uid = next((uid_map[u] for u in f.refs if u in uid_map), None)
        if geometry is not None and f.ipp is not None:
            x, y, z = geometry.lps_to_index(f.ipp)
            ix, iy, iz = int(round(x)), int(round(y)), int(round(z))
            if max(abs(x - ix), abs(y - iy), abs(z - iz)) > _OFFSET_TOL:
                raise ValueError(f"segmentation frame {f.index + 1} lies between the image's "
                                 f"voxels (index {x:.2f}, {y:.2f}, {z:.2f}); it does not belong "
                                 "to this image grid")
            if by_uid is not None and by_uid != iz:
                disagree += 1
        elif by_uid is not None:
            ix, iy, iz = 0, 0, by_uid
        else:
            unplaced += 1
            continue
        if not (0 <= iz < shape[0]) or ix >= shape[2] or iy >= shape[1] \
                or ix + cols <= 0 or iy + rows <= 0:
            outside += 1
            continue
        out[f.index] = (iz, iy, ix)
    if outside:
        warnings.append(f"{outside} segmentation frame(s) lie outside the image and were skipped")
    if unplaced:
        warnings.append(f"{unplaced} segmentation frame(s) reference none of the image's slices "
                        "and have no position; skipped")
    if disagree:
        warnings.append(f"{disagree} frame(s) reference a different slice than their position "
                        "says; placed by position")
    return shape, out


def _frame_masks(ds, frames: list, placements: dict) -> Iterator:
    """(frame, slice, row offset, col offset, 2D bool/int array) for every placed frame."""
    from pydicom.pixels import iter_pixels

    kind = ds.get("SegmentationType", "BINARY")
    max_frac = float(ds.get("MaximumFractionalValue", 255) or 255)
    padding = ds.get("PixelPaddingValue") if kind == "LABELMAP" else None
    wanted = sorted(placements)
    by_index = {f.index: f for f in frames}
    for i, pixels in zip(wanted, iter_pixels(ds, indices=wanted)):
        pixels = np.asarray(pixels)
        if kind == "FRACTIONAL":
            pixels = pixels.astype(np.float32) >= max_frac / 2.0
        elif kind == "LABELMAP" and padding is not None:
            pixels = np.where(pixels == int(padding), 0, pixels)
        yield (by_index[i],) + placements[i] + (pixels,)


def _paste_region(shape: tuple, iy: int, ix: int, frame_shape: tuple) -> tuple:
    y0, x0 = max(iy, 0), max(ix, 0)
    y1, x1 = min(iy + frame_shape[0], shape[1]), min(ix + frame_shape[1], shape[2])
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - iy, y1 - iy), slice(x0 - ix, x1 - ix))


def _load(path, geometry, source_paths):
    ds = _open(path)
    warnings: list = []
    frames = _frames(ds)
    segments = _segments(ds)
    shape, placements = _placements(ds, frames, geometry, source_paths, warnings)
    if int(ds.Rows) > shape[1] or int(ds.Columns) > shape[2]:
        warnings.append(f"segmentation frames ({ds.Rows}x{ds.Columns}) are larger than the image "
                        f"({shape[1]}x{shape[2]}); the parts outside were dropped")
    return ds, frames, segments, shape, placements, warnings


def read_seg_segments(path, geometry: Optional[Geometry] = None, source_paths=None) -> dict:
    """{segment number: bool mask (z, y, x)} on the target grid, one per described segment."""
    ds, frames, segments, shape, placements, _ = _load(path, geometry, source_paths)
    masks = {n: np.zeros(shape, dtype=bool) for n in segments}
    for f, iz, iy, ix, pixels in _frame_masks(ds, frames, placements):
        dst, src = _paste_region(shape, iy, ix, pixels.shape)
        if f.segment is None:  # LABELMAP: pixel values are segment numbers
            for n in masks:
                masks[n][iz][dst] |= pixels[src] == n
        elif f.segment in masks:
            masks[f.segment][iz][dst] |= pixels[src].astype(bool)
    return masks


def read_seg(path, geometry: Optional[Geometry] = None, source_paths=None):
    """A DICOM SEG as one label map on the target grid: (labels, table_dict, warnings)."""
    ds, frames, segments, shape, placements, warnings = _load(path, geometry, source_paths)
    top = max((v for v, _, _ in segments.values()), default=0)
    labels = np.zeros(shape, dtype=np.uint8 if top <= 255 else np.uint16)
    order = {n: i for i, n in enumerate(sorted(segments))}
    placed = sorted(_frame_masks(ds, frames, placements),
                    key=lambda t: (order.get(t[0].segment, -1), t[0].index))
    overlaps: dict = {}
    lut = None
    if ds.get("SegmentationType", "") == "LABELMAP":
        lut = np.zeros(max(max(segments, default=0), 1) + 1, dtype=labels.dtype)
        for n, (v, _, _) in segments.items():
            lut[n] = v
    for f, iz, iy, ix, pixels in placed:
        dst, src = _paste_region(shape, iy, ix, pixels.shape)
        region = labels[iz][dst]
        if f.segment is None:
            vals = pixels[src]
            vals = lut[np.where(vals < len(lut), vals, 0)]
            region[vals > 0] = vals[vals > 0]
            continue
        if f.segment not in segments:
            continue
        mask = pixels[src].astype(bool)
        value = segments[f.segment][0]
        n_over = int(np.count_nonzero(region[mask]))
        if n_over:
            overlaps[f.segment] = overlaps.get(f.segment, 0) + n_over
        region[mask] = value
    if overlaps:
        parts = [f"{segments[n][1]} (segment {n}) covers {c} voxels of earlier segments"
                 for n, c in sorted(overlaps.items())]
        warnings.append("segments overlap: " + "; ".join(parts)
                        + "; in the label map the later segment wins")
    entries = table_entries({v: {"name": name, "color": rgb}
                             for v, name, rgb in segments.values()})
    return labels, make_table(entries), warnings
