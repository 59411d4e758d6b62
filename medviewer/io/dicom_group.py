"""Grouping of indexed DICOM image files into series by UID *and* geometry, with stable keys.

A blank SeriesInstanceUID (TotalSegmentator's example) groups by study, frame of reference,
folder and geometry instead; a UID reused for images of another size or orientation splits
into one series per geometry, each key suffixed by a short geometry hash.
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict

from .catalogue import SeriesEntry
from .dicom_index import FileHeader


def _rounded_iop(h: FileHeader) -> tuple:
    if h.iop is None:
        return ()
    return tuple(round(v, 3) + 0.0 for v in h.iop)  # + 0.0 turns -0.0 into 0.0


def geometry_key(h: FileHeader) -> tuple:
    """What must agree for files to stack into one volume."""
    return (_rounded_iop(h), h.rows, h.columns, h.frame_of_reference_uid,
            h.samples_per_pixel, h.photometric == "PALETTE COLOR")


def _short_hash(*parts) -> str:
    text = "\x1f".join(repr(p) for p in parts)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def group_headers(headers: list) -> list:
    """FileHeaders of image files -> [SeriesEntry], in first-seen order, unique stable keys."""
    by_uid: "OrderedDict[tuple, OrderedDict[tuple, list]]" = OrderedDict()
    for h in headers:
        uid = h.series_uid
        if uid:
            uid_key = ("uid", uid)
        else:  # blank UID: same study, frame of reference, modality and folder
            uid_key = ("nouid", h.study_uid, h.frame_of_reference_uid, h.modality,
                       os.path.dirname(os.path.abspath(h.path)))
        by_uid.setdefault(uid_key, OrderedDict()).setdefault(geometry_key(h), []).append(h)

    entries = []
    seen: set = set()
    for uid_key, by_geom in by_uid.items():
        for geom, members in by_geom.items():
            if uid_key[0] == "uid":
                base = uid_key[1]
                key = base if len(by_geom) == 1 else f"{base}#{_short_hash(geom)}"
            else:
                key = "nouid-" + _short_hash(uid_key, geom)
            n = 2
            unique = key
            while unique in seen:  # only if hashes collide; keep deterministic
                unique = f"{key}~{n}"
                n += 1
            seen.add(unique)
            entries.append(_make_entry(unique, members, split=len(by_geom) > 1))
    return entries


def _make_entry(key: str, members: list, split: bool) -> SeriesEntry:
    first = members[0]
    notes = []
    if not first.series_uid:
        notes.append("blank SeriesInstanceUID: grouped by study, frame of reference and geometry")
    if split:
        notes.append("SeriesInstanceUID shared with images of another geometry: split by geometry")
    return SeriesEntry(
        key=key, kind="dicom", paths=[h.path for h in members], modality=first.modality,
        description=first.series_description, series_uid=first.series_uid,
        study_uid=first.study_uid, study_description=first.study_description,
        study_date=first.study_date, patient_key=first.patient_key,
        patient_label=first.patient_label, series_number=first.series_number,
        n_images=len(members), n_frames=sum(h.n_frames for h in members),
        rows=first.rows, columns=first.columns, notes=notes, headers=list(members))
