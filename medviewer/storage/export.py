"""Export of case-label records to CSV (one row per record x class) or JSON, atomically.

Rows carry the image hash; whose image it is comes only from ``subjects`` (image hash ->
columns, e.g. a pseudonym and UIDs) that the caller passes (the store keeps no patient
identity). The payload is ``CaseLabels.to_dict()``;
series-level findings are read from its ``"series"`` mapping (or, for a bare payload, from
top-level ``name -> bool|None`` entries) and slice-level ones from ``"slices"``
(``{z: {name: bool|None}}``); class order follows ``"classes"`` when present.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Iterable, Optional

from medviewer.core.atomic import atomic_write_text
from medviewer.storage.store import Record

CSV_FIELDS = ("record_id", "parent_id", "image_hash", "tag", "source", "source_kind",
              "source_version", "time", "app_version", "class", "slice", "present")


def _class_names(payload: dict) -> Optional[list]:
    classes = payload.get("classes")
    if isinstance(classes, dict):  # e.g. {"names": [...]} from a ClassList.to_dict()
        classes = classes.get("names")
    if isinstance(classes, (list, tuple)):
        return [c if isinstance(c, str) else c.get("name") for c in classes]
    return None


def _present_map(value) -> dict:
    """{name: bool|None} from a mapping or a list of {"name", "present"} entries."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if v is None or isinstance(v, bool)}
    if isinstance(value, list):
        return {str(d["name"]): d.get("present") for d in value
                if isinstance(d, dict) and "name" in d}
    return {}


def case_findings(payload: dict) -> tuple[list, dict, dict]:
    """(class names, series {name: present}, slices {z: {name: present}}) of a payload."""
    if "series" in payload:
        series = _present_map(payload["series"])
    else:
        series = _present_map({k: v for k, v in payload.items() if k not in ("classes",
                                                                             "slices")})
    slices = {}
    for z, entry in (payload.get("slices") or {}).items():
        slices[int(z)] = _present_map(entry)
    names = _class_names(payload)
    if names is None:
        names = list(series)
        for entry in slices.values():
            names += [n for n in entry if n not in names]
    return names, series, slices


def _present_text(value) -> str:
    return "" if value is None else ("true" if value else "false")


def case_rows(records: Iterable[Record], subjects: Optional[dict] = None) -> list[dict]:
    """One dict per (record, class) for series-level findings, plus one per (record, slice,
    class) for slice-level findings that are set. ``present`` is true/false, empty if unset.
    ``subjects`` adds each image's subject columns after ``image_hash``."""
    rows = []
    subjects = subjects or {}
    for rec in records:
        if rec.kind != "case":
            raise ValueError(f"record {rec.id} is a {rec.kind} record, not case labels")
        names, series, slices = case_findings(rec.payload)
        base = {"record_id": rec.id, "parent_id": rec.parent_id or "",
                "image_hash": rec.image_hash, **subjects.get(rec.image_hash, {}),
                "tag": rec.tag, "source": rec.source.name,
                "source_kind": rec.source.kind, "source_version": rec.source.version,
                "time": rec.created_at, "app_version": rec.app_version}
        for name in names:
            rows.append({**base, "class": name, "slice": "",
                         "present": _present_text(series.get(name))})
        for z in sorted(slices):
            for name in names:
                if slices[z].get(name) is not None:
                    rows.append({**base, "class": name, "slice": str(z),
                                 "present": _present_text(slices[z][name])})
    return rows


def _subject_fields(subjects: dict) -> list:
    fields: list = []
    for cols in subjects.values():
        fields += [k for k in cols if k not in fields]
    return fields


def _record_json(rec: Record, subjects: dict) -> dict:
    extra = {"subject": subjects[rec.image_hash]} if rec.image_hash in subjects else {}
    return {"id": rec.id, "parent_id": rec.parent_id, "image_hash": rec.image_hash, **extra,
            "kind": rec.kind, "tag": rec.tag,
            "source": {"kind": rec.source.kind, "name": rec.source.name,
                       "version": rec.source.version},
            "time": rec.created_at, "app_version": rec.app_version,
            "effort": rec.effort.to_dict(), "preprocessing": rec.preprocessing,
            "labels": rec.payload}


def export_case_labels(records: Iterable[Record], path: str | os.PathLike,
                       subjects: Optional[dict] = None) -> Path:
    """Write case-label records to ``path``: ``.csv`` (row per record x class) or ``.json``
    (list of records with their payload), with ``subjects`` ({image hash: {column: text}})
    beside each image hash when given. Written atomically; returns the path."""
    out = Path(path)
    records = list(records)
    subjects = subjects or {}
    suffix = out.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        fields = list(CSV_FIELDS)
        fields[3:3] = _subject_fields(subjects)
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(case_rows(records, subjects))
        atomic_write_text(out, buf.getvalue())
    elif suffix == ".json":
        for rec in records:
            if rec.kind != "case":
                raise ValueError(f"record {rec.id} is a {rec.kind} record, not case labels")
        doc = {"format": "medviewer-case-labels", "version": 1,
               "records": [_record_json(r, subjects) for r in records]}
        atomic_write_text(out, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    else:
        raise ValueError(f"export needs a .csv or .json file name, got {out.name!r}")
    return out
