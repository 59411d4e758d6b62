"""Per-frame geometry and rescale of multi-frame DICOM (enhanced functional groups, legacy)."""
from __future__ import annotations

from typing import Optional

from .dicom_index import FileHeader


def _floats(value, n: int) -> Optional[tuple]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _group(frame_item, shared_item, name: str):
    """A functional group item: the per-frame one wins over the shared one."""
    for item in (frame_item, shared_item):
        if item is not None:
            seq = item.get(name)
            if seq:
                return seq[0]
    return None


def enhanced_frames(ds, h: FileHeader) -> list:
    """[(ipp, iop, pixel_spacing, slope, intercept, temporal_key)] for every frame."""
    n = h.n_frames
    base_slope, base_icpt = (h.slope, h.intercept) if h.has_rescale else (1.0, 0.0)
    per = ds.get("PerFrameFunctionalGroupsSequence")
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    if not per:
        # legacy multi-frame: one position for the whole object at most
        return [(None, h.iop, h.pixel_spacing, base_slope, base_icpt, i) for i in range(n)]
    out = []
    for i in range(n):
        item = per[i] if i < len(per) else None
        pos = _group(item, shared, "PlanePositionSequence")
        ori = _group(item, shared, "PlaneOrientationSequence")
        meas = _group(item, shared, "PixelMeasuresSequence")
        pvt = _group(item, shared, "PixelValueTransformationSequence")
        content = _group(item, shared, "FrameContentSequence")
        ipp = _floats(pos.get("ImagePositionPatient"), 3) if pos is not None else None
        iop = _floats(ori.get("ImageOrientationPatient"), 6) if ori is not None else None
        spacing = _floats(meas.get("PixelSpacing"), 2) if meas is not None else None
        slope, icpt = base_slope, base_icpt
        if pvt is not None:
            try:
                slope = float(pvt.get("RescaleSlope", 1.0) or 1.0)
                icpt = float(pvt.get("RescaleIntercept", 0.0) or 0.0)
            except (TypeError, ValueError):
                pass
        tkey = 0
        if content is not None:
            t = content.get("TemporalPositionIndex")
            tkey = int(t) if t not in (None, "") else 0
        out.append((ipp, iop or h.iop, spacing or h.pixel_spacing, slope, icpt, tkey))
    return out
