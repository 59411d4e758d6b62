"""Patient identity in exports and on screen: which DICOM attributes identify a person, the
keyed pseudonym that stands in for a patient, and the ``subject`` block of export sidecars.

Stdlib only. The pseudonym is an HMAC-SHA256 of the patient's ID (else name) under a secret
key, so it is the same for one patient in every export made with that key (linking works)
and, unlike a plain hash, cannot be reversed by hashing every plausible ID (hospital IDs have
few digits). The key lives with the workspace (``medviewer.services.deid``).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import Mapping, Optional

__all__ = ["IDENTITY_KEYWORDS", "REPLACE_KEYWORDS", "BLANK_KEYWORDS", "DATE_KEYWORDS",
           "HIDDEN", "pseudonym", "redact", "patient_identity", "subject_block", "is_identifying",
           "identity_values"]

PSEUDONYM_PREFIX = "ANON-"
HIDDEN = "(hidden)"  # what the viewer shows instead of a patient detail

# Replaced by the pseudonym in an anonymised DICOM object.
REPLACE_KEYWORDS = ("PatientName", "PatientID")
# Kept but emptied (type 2 in the Patient and General Study modules: must be present).
BLANK_KEYWORDS = ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                  "ReferringPhysicianName", "StudyID", "AccessionNumber")
# Removed. Patient, study and visit attributes of the DICOM PS3.15 Basic Application
# Confidentiality Profile that a person or an encounter can be recognised by (names,
# IDs, dates, addresses, physicians, institutions, free-text histories and comments).
_REMOVE_KEYWORDS = (
    "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "PatientBirthTime",
    "PatientBirthName", "PatientMotherBirthName", "OtherPatientIDs", "OtherPatientIDsSequence",
    "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "MedicalRecordLocator", "PatientInsurancePlanCodeSequence",
    "PatientPrimaryLanguageCodeSequence", "MilitaryRank", "BranchOfService",
    "CountryOfResidence", "RegionOfResidence", "EthnicGroup", "Occupation",
    "PatientReligiousPreference", "PatientComments", "AdditionalPatientHistory", "PatientAge",
    "PatientSize", "PatientWeight", "PatientSizeCodeSequence", "MedicalAlerts", "Allergies",
    "SmokingStatus", "PregnancyStatus", "LastMenstrualDate", "PatientState",
    "SpecialNeeds", "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization",
    "PatientSpeciesDescription", "PatientBreedDescription", "BreedRegistrationSequence",
    "StrainDescription", "PatientIdentityRemoved", "DeidentificationMethod",
    "DeidentificationMethodCodeSequence", "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID", "ClinicalTrialSponsorName", "ClinicalTrialProtocolName",
    "ClinicalTrialSiteID", "ClinicalTrialSiteName", "ClinicalTrialCoordinatingCenterName",
    "StudyDescription", "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "NameOfPhysiciansReadingStudy", "PhysiciansReadingStudyIdentificationSequence",
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence", "RequestingPhysician", "RequestingService",
    "RequestedProcedureDescription", "RequestAttributesSequence", "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence", "AdmissionID", "IssuerOfAdmissionIDSequence",
    "ServiceEpisodeID", "ServiceEpisodeDescription", "IssuerOfServiceEpisodeIDSequence",
    "ReasonForVisit", "ReasonForVisitCodeSequence", "AdmittingDate", "AdmittingTime",
    "DischargeDate", "DischargeTime", "PatientInstitutionResidence", "CurrentPatientLocation",
    "VisitComments", "OtherStudyNumbers", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "InstitutionCodeSequence", "StationName",
    "PerformingPhysicianName", "OperatorsName", "ScheduledPerformingPhysicianName",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID", "PerformedProcedureStepDescription", "ScheduledProcedureStepID",
    "StudyComments", "ImageComments", "AcquisitionDate", "AcquisitionTime",
    "AcquisitionDateTime",
)
IDENTITY_KEYWORDS = frozenset(REPLACE_KEYWORDS + BLANK_KEYWORDS + _REMOVE_KEYWORDS)
# Dates and times of the study or the person (the viewer hides them with the names).
DATE_KEYWORDS = frozenset(("PatientBirthDate", "PatientBirthTime", "StudyDate", "StudyTime",
                           "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
                           "AcquisitionDateTime", "ContentDate", "ContentTime",
                           "InstanceCreationDate", "InstanceCreationTime", "AdmittingDate",
                           "DischargeDate", "LastMenstrualDate"))


def is_identifying(keyword: str) -> bool:
    """Whether the viewer hides this attribute's value with "hide patient details"."""
    return keyword in IDENTITY_KEYWORDS or keyword in DATE_KEYWORDS


def patient_identity(meta: Mapping) -> str:
    """What identifies the patient in ``meta`` (a volume's tags): the ID, else the name, else
    '' (then there is nobody to pseudonymise)."""
    pid = str(meta.get("PatientID", "") or "").strip()
    return pid or str(meta.get("PatientName", "") or "").strip()


def pseudonym(identity: str, key: bytes) -> str:
    """``ANON-`` and 16 hex digits of HMAC-SHA256(key, identity): stable per key, not
    reversible without the key. Raises ValueError for a key shorter than 16 bytes."""
    if len(key) < 16:
        raise ValueError("the pseudonym key must be at least 16 bytes")
    digest = hmac.new(key, str(identity).encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:16].upper()


def identity_values(meta: Mapping) -> list:
    """The patient's identifying strings in ``meta`` worth searching an output for (name,
    its parts, ID, birth date), longest first; values under 3 characters are left out."""
    values = set()
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs",
               "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName"):
        text = str(meta.get(kw, "") or "").strip()
        if not text:
            continue
        values.add(text)
        values.update(p.strip() for p in text.replace("\\", "^").split("^"))
    return sorted((v for v in values if len(v) >= 3), key=lambda v: (-len(v), v))


def redact(text: str, values) -> str:
    """``text`` with every occurrence of ``values`` (case-insensitive; longest first) shown
    as :data:`HIDDEN`."""
    parts = sorted({str(v) for v in values if v}, key=len, reverse=True)
    if not parts:
        return str(text)
    pattern = "|".join(re.escape(v) for v in parts)  # one pass: HIDDEN is never re-matched
    return re.sub(pattern, HIDDEN, str(text), flags=re.IGNORECASE)


def subject_block(meta: Optional[Mapping], anonymise: bool, key: Optional[bytes]) -> dict:
    """What an export sidecar says about whose image it is: study and series UIDs (kept
    either way: they tie the output to its source images) and, anonymised, the patient's
    pseudonym; otherwise the patient's name and ID as the source has them."""
    meta = meta or {}
    block = {"anonymised": bool(anonymise),
             "study_uid": str(meta.get("StudyInstanceUID", "") or ""),
             "series_uid": str(meta.get("SeriesInstanceUID", "") or "")}
    identity = patient_identity(meta)
    if anonymise:
        block["patient"] = pseudonym(identity, key) if identity and key else ""
    else:
        block["patient_name"] = str(meta.get("PatientName", "") or "")
        block["patient_id"] = str(meta.get("PatientID", "") or "")
    return block
