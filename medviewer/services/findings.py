"""Findings of a case (no Qt; run on a worker): measure every connected component of a label
map or a model's proposal on its image (:mod:`medviewer.core.findings`), and export the list as
CSV, JSON or a DICOM SR (TID 1500 Measurement Report) referencing a DICOM SEG of the labels.

Exports are written atomically. JSON carries the ``subject`` block of the other exports
(anonymised by default: a pseudonym, never the patient's name or ID) and the image geometry;
CSV has one row per finding with :data:`medviewer.core.findings.CSV_COLUMNS`.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from medviewer.core.findings import (CSV_COLUMNS, Finding, find_findings, findings_to_rows,
                                     merge_findings)
from medviewer.core.volume import Volume

__all__ = ["case_findings", "label_names", "export_findings", "read_findings",
           "export_findings_sr", "load_image_and_labels", "compare_time_points",
           "FINDINGS_FORMAT"]

FINDINGS_FORMAT = "medviewer-findings"


def label_names(table) -> dict:
    """{value: name} from any label-table form (LabelTable, its dict, a proposal's table)."""
    from medviewer.io.labels_io_tables import table_entries

    return {int(v): str(e.get("name") or f"Label {v}") for v, e in table_entries(table).items()}


def case_findings(volume: Volume, labels: np.ndarray, table=None, *, source: str = "labels",
                  connectivity: int = 26, min_voxels: int = 1, reporter=None,
                  update: Optional[tuple] = None) -> List[Finding]:
    """The findings of ``labels`` (z, y, x, the label map being edited or a proposal) on
    ``volume``: mean/SD of the image (HU for CT; not measured on colour images).

    ``update``: (earlier findings of these labels, label values changed since): only those
    labels are measured again and merged into the earlier list."""
    image = None if volume.is_rgb else volume.array
    values = None if update is None else sorted(update[1])
    found = find_findings(labels, volume.geometry, image, label_names(table),
                          connectivity=connectivity, units=volume.units or "", source=source,
                          min_voxels=min_voxels, reporter=reporter, values=values)
    return found if update is None else merge_findings(update[0], found, values)


def compare_time_points(fixed: Volume, fixed_labels: np.ndarray, moving: Volume,
                        moving_labels: np.ndarray, transform, table=None, *,
                        max_distance_mm: float = 20.0, reporter=None) -> list:
    """Findings of a baseline (``fixed``) and a follow-up (``moving``, registered to it by
    ``transform``, fixed LPS -> moving LPS as :func:`services.registration.register` gives
    it) matched by label and centroid distance: [:class:`FindingChange`]. The follow-up's
    labels and image are resampled onto the baseline's grid (nearest neighbour / linear)
    and measured there, so both time points are measured in one frame."""
    from medviewer.core.findings import match_findings

    from .registration import resample_labels, resample_volume

    base = case_findings(fixed, fixed_labels, table, reporter=reporter)
    labels = resample_labels(np.asarray(moving_labels), moving.geometry, fixed.geometry, transform)
    image = resample_volume(moving, fixed.geometry, transform)
    follow = case_findings(image, labels, table, reporter=reporter)
    return match_findings(base, follow, max_distance_mm)


def load_image_and_labels(image_path, labels_path, resample: bool = False, reporter=None):
    """(volume, labels, table) for the command line: an image (volume file or DICOM series)
    and its label map (NIfTI/NRRD/MHA on its grid, or a DICOM SEG of its series)."""
    from medviewer.io.labels_io import GeometryMismatch

    from .annotations import read_label_file, read_seg_file
    from .interactive import load_volume

    vol = load_volume(image_path, reporter)
    if Path(labels_path).suffix.lower() in (".dcm", ".seg"):
        labels, table, _ = read_seg_file(labels_path, vol.geometry, vol.source_paths)
        return vol, labels, table
    res = read_label_file(labels_path, vol.geometry, resample=resample)
    if isinstance(res, GeometryMismatch):
        raise ValueError(f"{Path(labels_path).name} is not on the image's grid ({res}); "
                         "--resample puts it there (nearest neighbour)")
    labels, table, _ = res
    return vol, labels, table


def _doc(findings: Sequence[Finding], volume: Optional[Volume], anonymise: bool,
         key_folder) -> dict:
    from .exports import subject_for

    doc = {"format": FINDINGS_FORMAT, "version": 1,
           "connectivity": findings[0].connectivity if findings else None,
           "findings": [f.to_dict() for f in findings]}
    if volume is not None:
        doc["image"] = {"modality": volume.modality or "", "units": volume.units or "",
                        "geometry": volume.geometry.to_dict()}
        doc["subject"] = subject_for(volume.meta, anonymise, key_folder)
    return doc


def export_findings(findings: Sequence[Finding], path, volume: Optional[Volume] = None, *,
                    anonymise: bool = True, key_folder=None) -> Path:
    """Write ``findings`` to ``path``: ``.csv`` (a row each) or ``.json`` (with the image
    geometry and the anonymised subject). Atomic; returns the path."""
    from medviewer.core.atomic import atomic_write_text

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(findings_to_rows(findings))
        atomic_write_text(out, buf.getvalue())
    elif suffix == ".json":
        doc = _doc(list(findings), volume, anonymise, key_folder)
        atomic_write_text(out, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    else:
        raise ValueError(f"findings are exported as .csv or .json, not {out.name!r}")
    return out


def read_findings(path) -> List[Finding]:
    """Findings from a JSON export (CSV: use :func:`read_findings_rows`)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != FINDINGS_FORMAT:
        raise ValueError(f"{Path(path).name} is not a MedViewer findings file")
    return [Finding.from_dict(d) for d in doc.get("findings", [])]


def read_findings_rows(path) -> List[dict]:
    """The rows of a CSV export, as text."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def export_findings_sr(findings: Sequence[Finding], labels: np.ndarray, table,
                       volume: Volume, sr_path, seg_path=None, *, anonymise: bool = True,
                       key_folder=None) -> tuple:
    """A DICOM SEG of ``labels`` (``seg_path``, default beside the SR as ``<name>_seg.dcm``)
    and a Comprehensive 3D SR (TID 1500) at ``sr_path`` with one measurement group per
    finding referencing its segment and the source images. Returns (sr path, seg path).
    Raises ValueError when the image was not loaded from DICOM (no SR without its images)."""
    from medviewer.io.dicom_sr_write import write_findings_sr

    from .annotations import is_dicom_volume
    from .exports import export_seg, pseudonym_key

    if not findings:
        raise ValueError("there are no findings to report")
    if not is_dicom_volume(volume):
        raise ValueError("the image was not loaded from DICOM: a DICOM SR of findings needs "
                         "its DICOM images (export CSV or JSON instead)")
    sr_path = Path(sr_path)
    if seg_path is None:
        stem = sr_path.name[:-4] if sr_path.name.lower().endswith(".dcm") else sr_path.name
        seg_path = sr_path.with_name(stem + "_seg.dcm")
    seg = export_seg(labels, table, volume, seg_path, anonymise=anonymise, key_folder=key_folder)
    key = pseudonym_key(key_folder) if anonymise else None
    write_findings_sr(findings, volume, seg, sr_path, anonymise=anonymise, pseudonym_key=key)
    return sr_path, Path(seg)
