"""DICOM SEG export without the patient: on chest CT slices with a planted name, ID, birth
date and other identifying tags, an anonymised SEG holds none of them (bytes searched), names
the patient by a keyed pseudonym, keeps the UIDs that attach it to its source (it reads back
onto the image), and says it was de-identified; not anonymised, it names the patient. A
source whose SOP Class UID is empty is exported with the file meta's class, or refused with a
clear error when there is none (it used to raise KeyError)."""
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medviewer.core.deid import pseudonym
from medviewer.io.dicom_deid import DEID_METHOD
from medviewer.io.dicom_seg import read_seg, write_seg
from medviewer.io.load import open_first

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: phi_fixtures
from phi_fixtures import NAME, PATIENT_ID, find_phi, planted_study  # noqa: E402

KEY = bytes(range(32))
TABLE = {"labels": [{"value": 1, "name": "Lesion", "color": [255, 0, 0]}]}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = planted_study(tmp_path_factory.mktemp("planted") / "study", n=4)
    vol = open_first([folder])
    labels = np.zeros(vol.shape, np.uint8)
    labels[1:3, 200:260, 220:300] = 1
    return folder, vol, labels


def test_anonymised_seg_has_no_identity_and_still_attaches_to_its_source(study, tmp_path):
    folder, vol, labels = study
    assert vol.meta["PatientName"] == NAME and vol.meta["PatientID"] == PATIENT_ID
    out = write_seg(labels, TABLE, vol, tmp_path / "seg.dcm", pseudonym_key=KEY)
    assert find_phi(tmp_path) == {}
    assert set(find_phi(folder)) == {p.name for p in folder.iterdir()}  # the search finds them
    seg = hd.seg.segread(out)
    alias = pseudonym(PATIENT_ID, KEY)
    assert seg.PatientName == alias and seg.PatientID == alias and alias.startswith("ANON-")
    assert seg.PatientBirthDate == "" and seg.AccessionNumber == "" and seg.StudyID == ""
    assert seg.ReferringPhysicianName == "" and "StudyDescription" not in seg
    assert seg.PatientIdentityRemoved == "YES" and len(seg.DeidentificationMethod) <= 64
    src = pydicom.dcmread(vol.source_paths[0], stop_before_pixels=True)
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    assert seg.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    refs = {i.ReferencedSOPInstanceUID
            for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert refs == {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
                    for p in vol.source_paths}
    back, table, warnings = read_seg(out, source_paths=vol.source_paths)  # by reference
    np.testing.assert_array_equal(back, labels)
    # one key: one pseudonym per patient in every export; another key: another pseudonym
    again = write_seg(labels, TABLE, vol, tmp_path / "again.dcm", pseudonym_key=KEY)
    assert pydicom.dcmread(again).PatientID == alias
    other = write_seg(labels, TABLE, vol, tmp_path / "other.dcm", pseudonym_key=bytes(32))
    assert pydicom.dcmread(other).PatientID not in (alias, PATIENT_ID)


def test_not_anonymised_seg_names_the_patient(study, tmp_path):
    _, vol, labels = study
    out = write_seg(labels, TABLE, vol, tmp_path / "seg.dcm", anonymise=False)
    seg = pydicom.dcmread(out)
    assert str(seg.PatientName) == NAME and seg.PatientID == PATIENT_ID
    assert seg.get("DeidentificationMethod") != DEID_METHOD  # the source's own, if any
    assert set(find_phi(tmp_path)["seg.dcm"]) >= {NAME, PATIENT_ID}


def _copy(folder: Path, dest: Path, sop_class: str, media_class: str) -> Path:
    dest.mkdir()
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        ds.SOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPClassUID = media_class
        ds.save_as(dest / p.name, enforce_file_format=False)
    return dest


def test_empty_sop_class_uid_uses_the_file_meta_or_is_refused_clearly(study, tmp_path):
    folder, _, labels = study
    ct = "1.2.840.10008.5.1.4.1.1.2"
    vol = open_first([_copy(folder, tmp_path / "meta_only", "", ct)])
    assert pydicom.dcmread(vol.source_paths[0]).SOPClassUID == ""
    out = write_seg(labels, TABLE, vol, tmp_path / "seg.dcm", pseudonym_key=KEY)
    seg = pydicom.dcmread(out)
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0] \
        .ReferencedSOPClassUID == ct
    vol = open_first([_copy(folder, tmp_path / "none", "", "")])
    with pytest.raises(ValueError, match="no SOP Class UID"):
        write_seg(labels, TABLE, vol, tmp_path / "refused.dcm", pseudonym_key=KEY)
    assert not (tmp_path / "refused.dcm").exists()
    # a class that no SEG can reference (not an image storage class) is refused by name
    vol = open_first([_copy(folder, tmp_path / "odd", "1.2.3.4.5", "1.2.3.4.5")])
    with pytest.raises(ValueError, match="1.2.3.4.5"):
        write_seg(labels, TABLE, vol, tmp_path / "odd.dcm", pseudonym_key=KEY)
