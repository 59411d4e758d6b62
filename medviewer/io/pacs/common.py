"""What the DIMSE and DICOMweb clients share: the server description, the query, a match, the
error type, the retrieve result and the quiet-logging guard (no Qt, no jobs).

Patient names and IDs live only in :class:`Match` objects handed to the caller; nothing in
this package logs them, and the third-party loggers that would (pynetdicom's dataset dumps,
dicomweb-client's request URLs and headers, urllib3's request lines) are held at WARNING.
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, List, Optional

__all__ = ["PacsError", "IncompleteRetrieve", "RetrieveCancelled", "PacsServer", "Query", "Match", "RetrieveResult",
           "CancelFn", "ProgressFn", "LEVELS", "quiet_third_party_logs", "dicom_date_range",
           "match_from"]

LEVELS = ("patient", "study", "series")
CancelFn = Callable[[], bool]
ProgressFn = Callable[[int, int, str], None]  # done, total, message

# loggers that write identifiers (C-FIND datasets, query URLs) or credentials (headers)
_NOISY = ("pynetdicom", "dicomweb_client", "urllib3.connectionpool")


def quiet_third_party_logs() -> None:
    """Hold the loggers that would write patient identifiers or credentials at WARNING."""
    for name in _NOISY:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


class PacsError(RuntimeError):
    """A PACS call failed; the message is one sentence saying why (never patient data)."""


class IncompleteRetrieve(PacsError):
    """A retrieve ended before every instance arrived; those that did are kept."""

    def __init__(self, message: str, result: "RetrieveResult"):
        super().__init__(message)
        self.result = result


class RetrieveCancelled(IncompleteRetrieve):
    """The caller cancelled a retrieve; the instances that arrived are kept."""


@dataclass(frozen=True)
class PacsServer:
    """One configured archive: DIMSE (``host``/``port``/AE titles) or DICOMweb (``url``)."""

    name: str = ""
    host: str = ""
    port: int = 0
    called_aet: str = ""  # the server's AE title
    calling_aet: str = "MEDVIEWER"  # ours
    url: str = ""  # DICOMweb base URL (e.g. http://host:8042/dicom-web); empty for DIMSE
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 10.0  # seconds, for every call (connect, each message, each HTTP read)
    move_port: int = 0  # our storage SCP's port for C-MOVE (0: a free port, loopback tests)

    @property
    def kind(self) -> str:
        return "dicomweb" if self.url else "dimse"

    @property
    def label(self) -> str:
        """Where it is, without credentials."""
        if self.url:
            return self.name or re.sub(r"//[^@/]*@", "//", self.url)
        return self.name or f"{self.called_aet}@{self.host}:{self.port}"

    def check(self) -> None:
        if self.url:
            if not re.match(r"^https?://", self.url):
                raise PacsError(f"the DICOMweb URL must start with http:// or https://: {self.label}")
            return
        if not self.host or not (0 < int(self.port) < 65536):
            raise PacsError("a DIMSE server needs a host and a port between 1 and 65535")
        for what, aet in (("called", self.called_aet), ("calling", self.calling_aet)):
            if not aet or len(aet) > 16 or "\\" in aet or not aet.isprintable():
                raise PacsError(f"the {what} AE title must be 1-16 printable characters, got {aet!r}")

    def to_dict(self, with_password: bool = False) -> dict:
        d = asdict(self)
        if not with_password:
            d.pop("password")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PacsServer":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("port", "move_port"):
            if k in known:
                known[k] = int(known[k] or 0)
        if "timeout" in known:
            known["timeout"] = float(known["timeout"])
        return cls(**known)

    def with_(self, **changes) -> "PacsServer":
        return replace(self, **changes)


@dataclass(frozen=True)
class Query:
    """A search: ``level`` patient, study or series; empty fields match anything. Dates are
    ``YYYYMMDD``; ``patient_name`` may use ``*`` wildcards."""

    level: str = "study"
    patient_id: str = ""
    patient_name: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    accession: str = ""
    study_uid: str = ""

    def __post_init__(self):
        if self.level not in LEVELS:
            raise PacsError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        for d in (self.date_from, self.date_to):
            if d and not re.fullmatch(r"\d{8}", d):
                raise PacsError(f"dates are YYYYMMDD, got {d!r}")


def dicom_date_range(date_from: str, date_to: str) -> str:
    """A DICOM DA range matcher (``A-B``, ``A-``, ``-B``, or empty)."""
    if not date_from and not date_to:
        return ""
    if date_from == date_to:
        return date_from
    return f"{date_from}-{date_to}"


@dataclass(frozen=True)
class Match:
    """One C-FIND / QIDO-RS answer. ``patient_*`` fields are patient details: show them only
    where the user lets the app show patient details."""

    level: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    accession: str = ""
    modalities: str = ""
    series_uid: str = ""
    series_number: Optional[int] = None
    series_description: str = ""
    modality: str = ""
    n_series: Optional[int] = None
    n_instances: Optional[int] = None

    def to_dict(self, hide_patient: bool = False) -> dict:
        d = asdict(self)
        if hide_patient:
            for k in ("patient_id", "patient_name", "patient_birth_date"):
                d[k] = "(hidden)" if d[k] else ""
        return d


def match_from(level: str, text: Callable[[str], str],
               number: Callable[[str], Optional[int]]) -> Match:
    """A Match from an answer read by keyword (``text``: its string value, ``number``: its
    integer value or None), whichever protocol it came by."""
    return Match(level=level, patient_id=text("PatientID"), patient_name=text("PatientName"),
                 patient_birth_date=text("PatientBirthDate"),
                 study_uid=text("StudyInstanceUID"), study_date=text("StudyDate"),
                 study_description=text("StudyDescription"), accession=text("AccessionNumber"),
                 modalities=text("ModalitiesInStudy"), series_uid=text("SeriesInstanceUID"),
                 series_number=number("SeriesNumber"),
                 series_description=text("SeriesDescription"), modality=text("Modality"),
                 n_series=number("NumberOfStudyRelatedSeries"),
                 n_instances=number("NumberOfSeriesRelatedInstances" if level == "series"
                                    else "NumberOfStudyRelatedInstances"))


@dataclass
class RetrieveResult:
    """What a retrieve left in ``folder``: every instance file there now (``paths``), how many
    the server said the request covered (``expected``, None when it did not say), how many
    arrived in this call and how many were in the cache already."""

    folder: str
    paths: List[str] = field(default_factory=list)
    expected: Optional[int] = None
    arrived: int = 0
    already_there: int = 0
    failed: int = 0
    first_arrival_s: Optional[float] = None  # seconds from the call's start to the first file

    @property
    def complete(self) -> bool:
        return self.failed == 0 and (self.expected is None or len(self.paths) >= self.expected)
