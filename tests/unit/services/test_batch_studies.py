"""Study ids of a batch run are deterministic: the same study has the same id however it is
named or found; every series is its own study; unreadable files are studies that fail."""
import os
import shutil
from pathlib import Path

import pydicom

from medviewer.services.batch_studies import collect_studies, read_list

SITE = Path(pydicom.__file__).resolve().parents[1]
PYDICOM_DATA = SITE / "data_store/data"  # pydicom-data, opened by path (no download)
CT_SMALL = SITE / "pydicom/data/test_files/CT_small.dcm"


def test_the_same_study_has_one_id_however_it_is_given(shared_data, tmp_path, monkeypatch):
    oblique = shared_data / "dcm_qa_toshiba_oblique"
    ct = shared_data / "totalseg/tests/reference_files/example_ct_sm.nii.gz"
    whole = collect_studies([str(oblique), str(ct)])
    ids = {s.path: s.id for s in whole.studies}
    assert set(ids) == {"dcm_qa_toshiba_oblique/In/Galan/10006_DTI_ALL_20d",
                        "dcm_qa_toshiba_oblique/In/Galan/8006_DTI_AX_30d",
                        "totalseg/tests/reference_files/example_ct_sm.nii.gz"}
    assert len(set(ids.values())) == 3 and whole.root == str(shared_data)
    # text files beside the series are passed over, not studies
    assert sorted(p for p, _ in whole.non_image) == [
        "dcm_qa_toshiba_oblique/LICENSE", "dcm_qa_toshiba_oblique/PROVENANCE.tsv",
        "dcm_qa_toshiba_oblique/README.md"]
    # one series folder given on its own, by a relative path, in a list file, in another order
    monkeypatch.chdir(shared_data)
    lst = tmp_path / "studies.txt"
    lst.write_text(f"# studies\n\n{ct}\n{oblique / 'In/Galan/8006_DTI_AX_30d'}\n")
    assert read_list(lst) == [str(ct), str(oblique / "In/Galan/8006_DTI_AX_30d")]
    again = collect_studies(read_list(lst) + ["dcm_qa_toshiba_oblique/In/Galan/8006_DTI_AX_30d"])
    assert sorted(s.id for s in again.studies) == sorted(
        ids[k] for k in ids if not k.endswith("20d"))
    assert [s.path for s in again.studies] == sorted(k for k in ids if not k.endswith("20d"))


def test_several_series_in_one_folder_and_broken_files(tmp_path):
    # pydicom-data: many series share one folder (names alike: data#series1 ...)
    found = collect_studies([str(PYDICOM_DATA)])
    assert len({s.id for s in found.studies}) == len(found.studies) == 20
    assert sum(s.path.endswith("#series1") for s in found.studies) > 1  # same name, other ids
    assert {p for p, _ in found.non_image} == {"data/liver.dcm", "data/liver_expb.dcm"}  # SEG
    # a list entry that does not exist, and a non-DICOM file named .dcm: failing studies
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(CT_SMALL, folder / "ct.dcm")
    (folder / "junk.dcm").write_bytes(b"not a dicom file at all" * 10)
    (folder / "notes.txt").write_text("a note")
    lst = tmp_path / "list.txt"
    lst.write_text("archive\nmissing_study\n")
    got = collect_studies(read_list(lst))
    by_path = {s.path: s for s in got.studies}
    assert set(by_path) == {"archive/ct.dcm", "archive/junk.dcm", "missing_study"}
    assert by_path["archive/ct.dcm"].case is not None and not by_path["archive/ct.dcm"].error
    assert by_path["missing_study"].error == "no such file or folder"
    assert "not a DICOM" in by_path["archive/junk.dcm"].error
    assert [p for p, _ in got.non_image] == ["archive/notes.txt"]
    assert os.path.isabs(got.root)
