"""C-FIND identifiers from a Query and Matches from the answers (DIMSE)."""
from __future__ import annotations

from typing import Optional

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .common import Match, Query, dicom_date_range, match_from

__all__ = ["identifier", "answer_match", "text_of", "int_of"]


def int_of(value) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def text_of(ds: Dataset, keyword: str) -> str:
    v = ds.get(keyword, "")
    if v is None:
        return ""
    if isinstance(v, MultiValue):
        return "\\".join(str(x) for x in v)
    return str(v)


def answer_match(ds: Dataset, level: str) -> Match:
    return match_from(level, lambda k: text_of(ds, k), lambda k: int_of(ds.get(k)))


def identifier(query: Query) -> Dataset:
    """The C-FIND identifier for ``query`` (return keys empty, matching keys filled)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = query.level.upper()
    ds.PatientID = query.patient_id
    ds.PatientName = query.patient_name
    if query.level == "patient":
        ds.PatientBirthDate = ""
        ds.NumberOfPatientRelatedStudies = ""
        return ds
    ds.StudyInstanceUID = query.study_uid
    ds.StudyDate = dicom_date_range(query.date_from, query.date_to)
    ds.AccessionNumber = query.accession
    ds.StudyDescription = ""
    ds.PatientBirthDate = ""
    if query.level == "study":
        ds.ModalitiesInStudy = query.modality
        ds.NumberOfStudyRelatedSeries = ""
        ds.NumberOfStudyRelatedInstances = ""
    else:
        ds.SeriesInstanceUID = ""
        ds.Modality = query.modality
        ds.SeriesNumber = ""
        ds.SeriesDescription = ""
        ds.NumberOfSeriesRelatedInstances = ""
    return ds
