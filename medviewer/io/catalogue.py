"""What a scan of paths found: image series (not yet loaded), non-image objects, skipped files."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class SeriesEntry:
    """One loadable image series (DICOM series group, or one volume file).

    ``key`` is unique within a catalogue (SeriesInstanceUID plus a geometry suffix when one
    UID covers images of different geometry, or the file path for non-DICOM files)."""

    key: str
    kind: str  # "dicom" or "file"
    paths: list  # DICOM files (unsorted) or the single volume file
    modality: str = ""
    description: str = ""
    series_uid: str = ""
    study_uid: str = ""
    study_description: str = ""
    study_date: str = ""
    patient_key: str = ""  # opaque grouping key; names/IDs are shown in the UI only, never logged
    patient_label: str = ""  # what the UI shows for the patient (may contain the name)
    series_number: Optional[int] = None
    n_images: int = 0
    n_frames: int = 0  # total frames (multi-frame objects count their frames)
    rows: int = 0
    columns: int = 0
    notes: list = field(default_factory=list)
    headers: list = field(default_factory=list)  # io-private per-file header records

    def summary(self) -> dict:
        return {"key": self.key, "kind": self.kind, "modality": self.modality,
                "description": self.description, "series_uid": self.series_uid,
                "study_uid": self.study_uid, "n_images": self.n_images,
                "n_frames": self.n_frames, "rows": self.rows, "columns": self.columns,
                "notes": list(self.notes)}


@dataclass
class NonImageObject:
    """A DICOM object that is not an image (RTSTRUCT, RT plan/dose, SR, waveform, PR...)."""

    path: str
    kind: str  # human name, e.g. "RT Structure Set"
    modality: str = ""
    sop_class_uid: str = ""
    series_uid: str = ""


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class Catalogue:
    series: list = field(default_factory=list)  # [SeriesEntry]
    non_image: list = field(default_factory=list)  # [NonImageObject]
    skipped: list = field(default_factory=list)  # [SkippedFile]

    def extend(self, other: "Catalogue") -> None:
        self.series.extend(other.series)
        self.non_image.extend(other.non_image)
        self.skipped.extend(other.skipped)

    def find(self, key_or_index: str) -> SeriesEntry:
        """A series by index (as listed), exact key, or unique key/UID prefix."""
        s = str(key_or_index)
        if s.isdigit() and int(s) < len(self.series):
            return self.series[int(s)]
        exact = [e for e in self.series if e.key == s or e.series_uid == s]
        if len(exact) == 1:
            return exact[0]
        pref = [e for e in self.series if e.key.startswith(s)]
        if len(pref) == 1:
            return pref[0]
        if not exact and not pref:
            raise KeyError(f"no series matches {s!r}")
        raise KeyError(f"{s!r} matches several series; use the index or the full key")
