"""DICOM series -> Volume: frames (classic or enhanced multi-frame) sorted, decoded, rescaled.

The output array is allocated once in its final dtype and filled slice by slice. Native
(uncompressed) monochrome slices are read straight from the file at the pixel offset the
header scan found; everything else is decoded by pydicom, reading each file once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medviewer.core.volume import Volume, WindowHint

from . import budget
from .catalogue import SeriesEntry
from .dicom_checks import (FRAME_RECORD_BYTES, check_codestreams, check_frame_count,
                           check_positions, check_rescale, frame_bytes, header_problem)
from .dicom_index import FileHeader, NotDicomError, index_file, non_image_kind
from .dicom_pixels import (LoadError, can_read_native, decode_frames, is_colour, plan_dtype,
                           read_native_frame, store_mono, stored_range)
from .dicom_sort import SPACING_UNKNOWN, stack_frames
from .dicom_frames import enhanced_frames
from .errors import guarded


@dataclass
class Frame:
    header: FileHeader
    index: int  # frame index inside the file
    ipp: Optional[tuple]
    iop: Optional[tuple]
    spacing: Optional[tuple]
    slope: float
    intercept: float
    key: tuple  # temporal order among frames at the same position


def _headers_for(entry: SeriesEntry) -> list:
    if entry.headers:
        out = list(entry.headers)
    else:
        out = []
        for p in entry.paths:
            name = Path(p).name
            try:
                with guarded(name, "cannot read the header"):
                    h, _, has_pixels = index_file(p)
            except LoadError as exc:
                if isinstance(exc.__cause__, NotDicomError):
                    raise LoadError(f"{name}: {exc.__cause__}") from None
                raise
            if not has_pixels:
                raise LoadError(f"{name}: no pixel data")
            out.append(h)
    for h in out:
        problem = header_problem(h)
        if problem:
            raise LoadError(f"{Path(h.path).name}: {problem}")
    return out


def _classic_frame(h: FileHeader, order: int) -> Frame:
    key = (h.temporal_index or 0, h.acquisition_number or 0, h.instance_number or 0, order)
    slope, intercept = (h.slope, h.intercept) if h.has_rescale else (1.0, 0.0)
    return Frame(h, 0, h.ipp, h.iop, h.pixel_spacing, slope, intercept, key)


def _collect_frames(headers: list, reporter) -> tuple:
    """All frames of all files, plus the datasets read in full (multi-frame files only)."""
    frames: list = []
    datasets: dict = {}
    kept = 0  # bytes of the multi-frame files read in full (kept until the volume is filled)
    for order, h in enumerate(headers):
        if h.n_frames == 1 and not h.enhanced:
            frames.append(_classic_frame(h, order))
            continue
        name = Path(h.path).name
        kept += h.file_size
        budget.check(kept, f"reading {len(datasets) + 1} multi-frame file(s)", name)
        ds = _read_full(h)
        datasets[h.path] = ds
        # NumberOfFrames is now known to fit the pixel data; its records must fit the budget
        budget.check((len(frames) + h.n_frames) * FRAME_RECORD_BYTES,
                     f"bookkeeping for {len(frames) + h.n_frames} frames", name)
        for i, info in enumerate(enhanced_frames(ds, h)):
            ipp, iop, spacing, slope, intercept, tkey = info
            frames.append(Frame(h, i, ipp, iop, spacing, slope, intercept,
                                (tkey, order, i)))
    return frames, datasets


def _read_full(h: FileHeader):
    """The whole dataset, after checking that NumberOfFrames fits its pixel data and that
    no compressed frame declares more pixels than the header (decoders allocate that)."""
    name = Path(h.path).name
    budget.check(h.file_size, "reading the file", name)
    with guarded(name, "cannot read"):
        ds = pydicom.dcmread(h.path, force=True)
        check_frame_count(h, ds)
        check_codestreams(h, ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" not in meta:
        # header-less files (no meta): use the encoding pydicom detected
        implicit = ds.is_implicit_VR if ds.is_implicit_VR is not None else True
        little = ds.is_little_endian if ds.is_little_endian is not None else True
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def read_dicom_series(entry: SeriesEntry, reporter=None) -> Volume:
    headers = _headers_for(entry)
    if not headers:
        raise LoadError("series has no image files")
    first = headers[0]
    name = Path(first.path).name
    kind = non_image_kind(first.sop_class_uid, first.modality)
    if kind:
        raise LoadError(f"{name}: {kind} is not an image series")
    frames, datasets = _collect_frames(headers, reporter)
    if not frames:
        raise LoadError(f"{name}: no image frames")
    check_positions([f.header.path for f in frames], [f.ipp for f in frames])
    warnings: list = _header_notes(headers)
    iops = {tuple(round(v, 3) for v in f.iop) for f in frames
            if f.iop is not None and all(np.isfinite(f.iop))}
    if len(iops) > 1:
        warnings.append("Frames have different orientations; the first orientation is used")
    fallback_z = first.spacing_between_slices or first.slice_thickness
    try:
        stack = stack_frames([f.ipp for f in frames], frames[0].iop, frames[0].spacing,
                             (first.rows, first.columns), [f.key for f in frames],
                             fallback_z=fallback_z, gantry_tilt=first.gantry_tilt)
    except ValueError as exc:
        raise LoadError(f"{name}: bad geometry: {exc}") from None
    warnings.extend(stack.warnings)
    chosen = [frames[i] for i in stack.order]
    array = _fill(chosen, datasets, first, reporter)
    return _make_volume(entry, first, array, stack.geometry, warnings, chosen)


def _header_notes(headers: list, most: int = 5) -> list:
    """Notes the header scan made (minor tags it ignored), once each, naming the first file
    and how many files share it; at most ``most`` of them, then how many more there are."""
    seen: dict = {}  # note -> [first file name, count]
    for h in headers:
        for note in h.notes:
            seen.setdefault(note, [Path(h.path).name, 0])[1] += 1
    out = [f"{note} ({name}{f' and {n - 1} more files' if n > 1 else ''})"
           for note, (name, n) in list(seen.items())[:most]]
    if len(seen) > most:
        out.append(f"{len(seen) - most} more header values were ignored")
    return out


def _plan(chosen: list, first: FileHeader) -> tuple:
    """(output dtype, must_check_range, bytes the fill needs at its peak): the volume, a
    float32 copy when an int16 volume may have to be upgraded, the multi-frame file decoded
    whole (or one frame) and its colour conversion."""
    nz, ny, nx = len(chosen), first.rows, first.columns
    colour = is_colour(first)
    if colour:
        dtype, check = np.dtype(np.uint8), False
    else:
        for f in chosen:
            check_rescale(f.header.path, f.slope, f.intercept, stored_range(f.header))
        dtype, check = plan_dtype([f.header for f in chosen],
                                  [(f.slope, f.intercept) for f in chosen])
    voxels = nz * ny * nx
    need = voxels * (3 if colour else dtype.itemsize) + (voxels * 4 if check else 0)
    wanted: dict = {}
    for f in chosen:
        wanted[id(f.header)] = (f.header, wanted.get(id(f.header), (None, 0))[1] + 1)
    temp = 0
    for h, n in wanted.values():
        whole = h.n_frames > 1 and n * 2 >= h.n_frames
        decoded = frame_bytes(h) * (h.n_frames if whole else 1)
        temp = max(temp, 2 * decoded + (ny * nx * 6 if colour else 0))
    return dtype, check, need + temp


def _fill(chosen: list, datasets: dict, first: FileHeader, reporter) -> np.ndarray:
    nz, ny, nx = len(chosen), first.rows, first.columns
    colour = is_colour(first)
    dtype, check, need = _plan(chosen, first)
    kind = "RGB" if colour else str(dtype)
    size = budget.fmt_bytes(nz * ny * nx * (3 if colour else dtype.itemsize))
    budget.check(need, f"a {nx} x {ny} x {nz} {kind} volume ({size}) with its decoding",
                 Path(first.path).name)
    if colour:
        out = np.empty((nz, ny, nx, 3), dtype=np.uint8)
    else:
        out = np.empty((nz, ny, nx), dtype=dtype)
    decoded: dict = {}  # path -> all frames, for multi-frame files decoded whole
    for z, f in enumerate(chosen):
        if reporter is not None:
            reporter(z, nz, f"Reading slice {z + 1} of {nz}")
        raw = _frame_pixels(f, datasets, decoded, chosen)
        if raw.shape[:2] != (ny, nx):
            raise LoadError(f"{Path(f.header.path).name}: slice {z} has shape "
                            f"{raw.shape[:2]}, expected {(ny, nx)}")
        if colour:
            if raw.ndim == 2:  # monochrome frame inside a colour series
                raw = np.repeat(raw[..., None], 3, axis=2).astype(np.uint8)
            out[z] = raw
            continue
        if raw.ndim != 2:
            raise LoadError(f"{Path(f.header.path).name}: slice {z} is colour in a "
                            f"monochrome series")
        new = store_mono(out, z, raw, f.slope, f.intercept, check)
        if new is not None:
            out, check = new, False
    if reporter is not None:
        reporter(nz, nz, "Done")
    return out


def _frame_pixels(f: Frame, datasets: dict, decoded: dict, chosen: list) -> np.ndarray:
    h = f.header
    if can_read_native(h):
        return read_native_frame(h, f.index)
    if h.n_frames == 1:
        ds = datasets.pop(h.path, None) or _read_full(h)
        return decode_frames(ds, h)
    ds = datasets.get(h.path) or _read_full(h)
    datasets[h.path] = ds
    wanted = sum(1 for c in chosen if c.header is h)
    if wanted * 2 >= h.n_frames:
        if h.path not in decoded:
            decoded.clear()  # keep only one decoded multi-frame file in memory
            decoded[h.path] = decode_frames(ds, h)
        return decoded[h.path][f.index]
    return decode_frames(ds, h, index=f.index)


def _make_volume(entry, first: FileHeader, array, geometry, warnings, chosen) -> Volume:
    meta = dict(first.meta)
    meta["NumberOfFiles"] = str(len({f.header.path for f in chosen}))
    # without ImageOrientationPatient the patient directions are unknown: views show no letters
    meta["orientation_known"] = any(f.iop is not None for f in chosen)
    numbers = [f.header.instance_number for f in chosen]
    if all(f.header.n_frames == 1 and not f.header.enhanced for f in chosen) and \
            None not in numbers:  # one InstanceNumber per slice (core.slice_numbers shows it)
        meta["instance_numbers"] = numbers
    if SPACING_UNKNOWN in warnings:
        meta["spacing_unknown"] = True  # 1 mm was assumed: checks of pixel size must not trust it
    units = ""
    if first.modality == "CT" and (first.has_rescale or any(f.slope != 1 or f.intercept
                                                            for f in chosen)):
        units = "HU"
    window = None
    if first.window is not None and not is_colour(first):
        window = WindowHint(center=first.window[0], width=first.window[1], name="Series default")
    desc = first.series_description or first.meta.get("ProtocolName", "") or first.modality
    return Volume(array=array, geometry=geometry, modality=first.modality, description=desc,
                  units=units, invert=first.photometric == "MONOCHROME1", window=window,
                  warnings=warnings, meta=meta, source_paths=[f.header.path for f in chosen],
                  uid=entry.key)
