"""Scanning: non-image objects, skipped files with reasons, DICOMDIR, volume files, keys,
UID reuse across geometries, progress/cancel, tag rows."""
import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.io.dicom_tags import read_tags
from medviewer.io.discover import scan_paths
from medviewer.io.load import load_series, open_first
from medviewer.jobs.progress import CancelToken, Cancelled, Reporter

from _dicom_data import CHEST, DATA, chest_files


def test_non_image_objects_are_listed_not_loaded():
    names = {"rtstruct.dcm": "RT Structure Set", "rtplan.dcm": "RT Plan",
             "rtdose.dcm": "RT Dose", "waveform_ecg.dcm": "Waveform",
             "test-SR.dcm": "Structured Report", "liver.dcm": "Segmentation"}
    paths = [get_testdata_file(n) for n in names]
    cat = scan_paths(paths)
    assert cat.series == []
    kinds = {o.path.split("/")[-1]: o.kind for o in cat.non_image}
    assert kinds == names


def test_skipped_files_have_reasons_and_do_not_abort(tmp_path):
    for f in chest_files()[:3]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "README.md").write_text("# notes\n")
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 50)
    (tmp_path / "noext").write_bytes(b"hello world, not dicom" * 10)
    shutil.copy(get_testdata_file("MR_truncated.dcm"), tmp_path / "trunc.dcm")
    cat = scan_paths([tmp_path])
    reasons = {s.path.split("/")[-1]: s.reason for s in cat.skipped}
    assert reasons["README.md"] == "not a DICOM or volume file"
    assert reasons["noext"] == "not a DICOM or volume file"
    assert reasons["junk.dcm"]
    assert "pixel data truncated" in reasons["trunc.dcm"]
    assert len(cat.series) == 1 and cat.series[0].n_images == 3
    assert load_series(cat.series[0]).array.shape[0] == 3


def test_dicomdir_expands_to_referenced_files():
    dicomdir = get_testdata_file("DICOMDIR")
    cat = scan_paths([dicomdir])
    ds = pydicom.dcmread(dicomdir)
    n_refs = sum(1 for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
    found = [p for e in cat.series for p in e.paths]
    found += [s.path for s in cat.skipped]
    found += [o.path for o in cat.non_image if o.kind != "DICOMDIR"]
    assert [o.kind for o in cat.non_image].count("DICOMDIR") == 1
    assert len(found) == n_refs
    assert cat.series, "the DICOMDIR's MR/CR images should form series"
    vol = load_series(cat.series[0])
    assert vol.array.ndim in (3, 4)


def test_volume_files_become_file_entries():
    folder = DATA / "pyradiomics_data" / "data"
    if not folder.is_dir():
        pytest.skip("shared data missing")
    cat = scan_paths([folder])
    nrrd = [e for e in cat.series if e.kind == "file"]
    assert nrrd and all(e.key == e.paths[0] for e in nrrd)
    assert all(e.paths[0].endswith((".nrrd", ".nii.gz", ".nii")) for e in nrrd)


def test_uid_reused_for_other_geometry_splits_with_unique_keys(tmp_path):
    files = chest_files()[:3]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    uid = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    small = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    small.SeriesInstanceUID = uid  # same UID, 128x128 image
    small.save_as(tmp_path / "small.dcm")
    cat = scan_paths([tmp_path])
    assert len(cat.series) == 2
    keys = [e.key for e in cat.series]
    assert len(set(keys)) == 2 and all(k.startswith(uid + "#") for k in keys)
    sizes = sorted((e.rows, e.n_images) for e in cat.series)
    assert sizes == [(128, 1), (512, 3)]
    assert keys == [e.key for e in scan_paths([tmp_path]).series]  # stable
    for e in cat.series:
        assert load_series(e).array.shape[1] == e.rows


@pytest.mark.skipif(not CHEST.is_dir(), reason="shared data missing")
def test_progress_and_cancel():
    seen = []
    cat = scan_paths([CHEST], Reporter(seen.append))
    assert len(seen) >= 100 and seen[-1].done == seen[-1].total
    token = CancelToken()
    calls = []

    def progress(p):
        calls.append(p)
        if p.done == 10:
            token.cancel()

    with pytest.raises(Cancelled):
        load_series(cat.series[0], Reporter(progress, token))
    assert calls[-1].done == 10


def test_read_tags_rows():
    rows = read_tags(get_testdata_file("eCT_Supplemental.dcm"))
    by_kw = {r.keyword: r for r in rows}
    assert by_kw["Modality"].value == "CT" and by_kw["Modality"].tag == "(0008,0060)"
    assert by_kw["Modality"].vr == "CS" and by_kw["Modality"].depth == 0
    assert max(r.depth for r in rows) >= 2  # nested functional groups
    assert "PixelData" not in by_kw
    assert all(len(r.value) <= 200 for r in rows)


def test_tag_browser_refuses_non_dicom_volume_files():
    """NRRD and gzipped NIfTI must not be parsed as DICOM (bogus '(524E,4452)' rows)."""
    from medviewer.io.dicom_tags import NotDicomFile, read_tags

    for p in (DATA / "pyradiomics_data" / "data" / "brain2_image.nrrd",
              DATA / "nilearn_mni152" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"):
        with pytest.raises(NotDicomFile, match="not a DICOM file"):
            read_tags(p)
    rows = read_tags(chest_files()[0])
    assert any(r.keyword == "Modality" and r.value == "CT" for r in rows)


def test_frames_without_orientation_are_marked_unoriented():
    """emri_small has no ImageOrientationPatient: the viewer must not invent R/L/A/P letters."""
    from pydicom.data import get_testdata_file

    vol = open_first([get_testdata_file("emri_small.dcm", download=False)])
    assert vol.meta["orientation_known"] is False
    assert open_first([CHEST]).meta["orientation_known"] is True
