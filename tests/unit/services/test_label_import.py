"""``labels import``: existing labels (a CSV of findings, or image/label-map pairs) become a
person's final records, all or nothing, idempotent, with every bad row named by its line.

Real files only: the MONAI ultrasound PNGs, pydicom-data's RGB ultrasound DICOM, a 25-slice MR
NIfTI, the pyradiomics brain MR NRRD image/label pairs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from medviewer.jobs import Cancelled, Reporter
from medviewer.services.label_import import LabelImportError, import_labels
from medviewer.storage.manifest_build import build_manifest
from medviewer.storage.store import LabelStore

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
US = DATA / "monai_testing_data" / "tests" / "testing_data" / "ultrasound_confidence_map"
FEMUR, NECK = US / "femur_input.png", US / "neck_input.png"
MR_NII = DATA / "monai_testing_data" / "tests" / "testing_data" / "anatomical.nii"
RAD = DATA / "pyradiomics_data" / "data"


def _us_rgb_dicom() -> Path:
    import data_store  # pydicom-data: a real RGB ultrasound frame, opened by path

    return Path(data_store.__file__).parent / "data" / "US1_UNCR.dcm"


def _csv(folder: Path, text: str, name: str = "labels.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "ws") as s:
        yield s


def _nothing_stored(store) -> None:
    assert store.records() == []
    assert store.image_hashes() == []
    assert list(store.arrays_dir.iterdir()) == []
    assert list(store.images_dir.iterdir()) == []


def test_case_labels_become_final_person_records_with_provenance(store, tmp_path):
    (tmp_path / "imgs").mkdir()
    local = tmp_path / "imgs" / "femur.png"
    local.write_bytes(FEMUR.read_bytes())  # a path relative to the CSV's folder
    csv = _csv(tmp_path, f"path,label\n# comment line\nimgs/femur.png,femur\n\n{NECK},neck\n")
    res = import_labels(store, csv, model_labels=["femur", "neck", "heart"], annotator="dr-a")
    assert (res.kind, res.rows, res.images, res.added, res.unchanged) == ("case", 2, 2, 2, 0)
    recs = store.records(kind="case")
    assert len(recs) == 2
    by_label = {next(iter(r.payload["series"])): r for r in recs}
    for label, line in (("femur", 3), ("neck", 5)):
        rec = by_label[label]
        assert rec.tag == "final" and rec.source.kind == "person" and rec.source.name == "dr-a"
        assert rec.parent_id is None
        assert rec.payload["series"] == {label: True} and rec.payload["slices"] == {}
        assert rec.payload["classes"] == ["femur", "neck", "heart"]
        prov = rec.payload["imported_from"]
        assert prov["file"] == "labels.csv" and prov["lines"] == [line]
        assert len(prov["sha256"]) == 64
        assert store.has_image(rec.image_hash)  # snapshotted for training
    # the training manifest of a model with these classes takes them as ground truth
    manifest, skipped = build_manifest(store, "us-anatomy", "classification",
                                       ["femur", "neck", "heart"], 2, out_dir=tmp_path / "m")
    assert skipped == []
    assert sorted(e.target["class"] for e in manifest.entries) == ["femur", "neck"]


def test_reimport_is_idempotent_and_a_changed_label_adds_one_record(store, tmp_path):
    csv = _csv(tmp_path, f"{FEMUR},femur\n{NECK},neck\n")  # no header
    assert import_labels(store, csv).added == 2
    again = import_labels(store, csv)
    assert (again.added, again.unchanged) == (0, 2)
    assert len(store.records()) == 2
    _csv(tmp_path, f"{FEMUR},femur\n{NECK},thyroid\n")
    changed = import_labels(store, csv)
    assert (changed.added, changed.unchanged) == (1, 1)
    newest = [r for r in store.records() if r.payload["series"] == {"thyroid": True}]
    assert len(newest) == 1 and newest[0].parent_id is None


def test_every_bad_row_is_named_by_line_and_nothing_is_stored(store, tmp_path):
    csv = _csv(tmp_path, "\n".join([
        "path,label,slice",                    # 1 header
        f"{FEMUR},femur",                       # 2 good
        f"{tmp_path / 'missing.png'},femur",    # 3 no such file
        f"{NECK},Neck",                         # 4 not a label of the model (case)
        f"{MR_NII},femur",                      # 5 a volume without a slice
        f"{MR_NII},femur,x",                    # 6 slice not a number
        f"{MR_NII},femur,99",                   # 7 slice outside the volume
        f",femur",                              # 8 empty path
        f"{FEMUR},neck",                        # 9 the same image as line 2, another label
    ]) + "\n")
    with pytest.raises(LabelImportError) as info:
        import_labels(store, csv, model_labels=["femur", "neck"])
    errors = info.value.errors
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8, 9)]
    assert "no such file" in errors[0]
    assert "not a label of the model" in errors[1] and "did you mean 'neck'" in errors[1]
    assert "volume of 25 slices" in errors[2] and "path,label,slice" in errors[2]
    assert "whole number" in errors[3]
    assert "outside the image (0..24)" in errors[4]
    assert "empty image path" in errors[5]
    assert "the same image as line 2" in errors[6]
    assert "nothing imported, 7 problems" in str(info.value)
    _nothing_stored(store)


def test_wrong_column_counts_are_refused(store, tmp_path):
    csv = _csv(tmp_path, f"{FEMUR}\n{NECK},neck,0,extra\n")
    with pytest.raises(LabelImportError) as info:
        import_labels(store, csv, kind="case")
    assert [e.split(":")[0] for e in info.value.errors] == ["line 1", "line 2"]
    assert "expected path,label[,slice]" in info.value.errors[0]
    _nothing_stored(store)


def test_slices_of_one_volume_merge_into_one_slice_level_record(store, tmp_path):
    csv = _csv(tmp_path, f"{MR_NII},upper,20\n{MR_NII},lower,3\n{MR_NII},upper,20\n")
    res = import_labels(store, csv)
    assert (res.rows, res.images, res.added) == (3, 1, 1)
    (rec,) = store.records(kind="case")
    assert rec.payload["series"] == {}
    assert rec.payload["slices"] == {"3": {"lower": True}, "20": {"upper": True}}
    assert rec.payload["imported_from"]["lines"] == [1, 2, 3]
    manifest, _ = build_manifest(store, "mr-level", "classification", ["lower", "upper"], 2,
                                 out_dir=tmp_path / "m")
    assert sorted((e.target["slice"], e.target["class"]) for e in manifest.entries) == [
        (3, "lower"), (20, "upper")]


def test_a_colour_ultrasound_dicom_is_snapshotted_in_colour_and_trains(store, tmp_path):
    """An RGB ultrasound frame keeps its colour in the snapshot; the trainer reads it (4D)
    and converts it to grey exactly as inference does."""
    from medviewer.ai.cards import ModelCard
    from medviewer.ai.preprocess import prepare_image_2d
    from medviewer.ai.training.data import cls_arrays, read_nifti_zyx
    from medviewer.services.cases import read_image

    csv = _csv(tmp_path, f"path,label\n{_us_rgb_dicom()},lymph_node\n{FEMUR},femur\n")
    import_labels(store, csv)
    manifest, _ = build_manifest(store, "us-anatomy", "classification",
                                 ["femur", "lymph_node"], 2, out_dir=tmp_path / "m")
    dcm = next(e for e in manifest.entries if e.target["class"] == "lymph_node")
    arr, _ = read_nifti_zyx(manifest.resolve(dcm.image))
    assert arr.shape == (1, 480, 640, 3) and arr.dtype == np.uint8
    card = ModelCard.load(REPO / "models" / "pneumonia-cxr" / "1.0.0")
    x, y = cls_arrays(manifest, manifest.entries,
                      ModelCard.from_dict(dict(card.to_dict(), labels=["femur", "lymph_node"]),
                                          card.folder))
    assert x.shape == (2, 1, 28, 28) and sorted(y.tolist()) == [0, 1]
    png = next(i for i, e in enumerate(manifest.entries) if e.target["class"] == "femur")
    assert np.allclose(x[png], prepare_image_2d(read_image(FEMUR), card))  # same as predict


def test_label_maps_import_with_names_idempotently(store, tmp_path):
    csv = _csv(tmp_path, "image_path,labelmap_path\n"
                         f"{RAD / 'brain1_image.nrrd'},{RAD / 'brain1_label.nrrd'}\n")
    res = import_labels(store, csv, label_names=["tumour"], annotator="dr-b")
    assert (res.kind, res.added) == ("labelmap", 1)
    (rec,) = store.records(kind="labelmap")
    assert rec.tag == "final" and rec.source.name == "dr-b"
    assert rec.payload["table"] == {"labels": [{"value": 1, "name": "tumour"}]}
    assert rec.payload["extra"]["imported_from"]["lines"] == [2]
    import SimpleITK as sitk

    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(RAD / "brain1_label.nrrd")))
    assert np.array_equal(store.load_labels(rec), ref)
    assert import_labels(store, csv, label_names=["tumour"]).unchanged == 1
    assert len(store.records()) == 1
    # a segmentation model's manifest takes every slice of a person's final label map
    manifest, skipped = build_manifest(store, "brain-tumour", "segmentation",
                                       ["background", "tumour"], 2, out_dir=tmp_path / "m")
    assert skipped == [] and sum(len(e.target["slices"]) for e in manifest.entries) == 25


def test_label_maps_need_names_the_right_grid_and_the_models_labels(store, tmp_path):
    csv = _csv(tmp_path, f"{RAD / 'brain1_image.nrrd'},{RAD / 'brain1_label.nrrd'}\n"
                         f"{RAD / 'brain2_image.nrrd'},{RAD / 'brain1_label.nrrd'}\n"
                         f"{FEMUR},{RAD / 'brain1_label.nrrd'}\n")
    with pytest.raises(LabelImportError) as info:
        import_labels(store, csv)  # auto: every second cell is a label-map file
    e1, e2, e3 = info.value.errors
    assert e1.startswith("line 1:") and "have no name" in e1 and "--labels" in e1
    assert e2.startswith("line 2:") and "does not match the image" in e2 and "--resample" in e2
    assert e3.startswith("line 3:") and "not a plain image file" in e3
    with pytest.raises(LabelImportError) as info:
        import_labels(store, _csv(tmp_path, f"{RAD / 'brain1_image.nrrd'},"
                                            f"{RAD / 'brain1_label.nrrd'}\n", "one.csv"),
                      label_names=["lesion"], model_labels=["background", "tumour"])
    assert "'lesion' not a label of the model" in info.value.errors[0]
    _nothing_stored(store)
    # the model's labels name the values when nothing else does
    res = import_labels(store, tmp_path / "one.csv", model_labels=["background", "tumour"])
    assert res.added == 1


def test_a_cancel_while_storing_rolls_everything_back(store, tmp_path):
    csv = _csv(tmp_path, f"{FEMUR},femur\n{NECK},neck\n"
                         f"{RAD / 'brain1_image.nrrd'},other,3\n")
    seen = []

    def progress(p):
        seen.append(p.message)
        if p.message.startswith("Storing") and sum(m.startswith("Storing") for m in seen) == 3:
            rep.cancel.cancel()

    rep = Reporter(progress)
    with pytest.raises(Cancelled):
        import_labels(store, csv, reporter=rep)
    assert sum(m.startswith("Storing") for m in seen) == 3  # all three stored, then undone
    _nothing_stored(store)
    assert import_labels(store, csv).added == 3  # the store works on after the rollback


def test_a_dicom_slice_trains_through_its_series_window_as_it_is_classified(store, tmp_path):
    """The app and ``predict`` classify a DICOM slice through the series' own window; the
    snapshot keeps that window and the trainer uses it too (not the percentiles)."""
    import data_store

    from medviewer.ai.cards import ModelCard
    from medviewer.ai.preprocess import prepare_image_2d
    from medviewer.ai.training.data import cls_arrays
    from medviewer.services.ai_runs import volume_window
    from medviewer.services.label_import import _read_volume

    mr = Path(data_store.__file__).parent / "data" / "MR-SIEMENS-DICOM-WithOverlays.dcm"
    import_labels(store, _csv(tmp_path, f"{mr},liver\n{FEMUR},femur\n"))
    manifest, _ = build_manifest(store, "mixed", "classification", ["femur", "liver"], 2,
                                 out_dir=tmp_path / "m")
    entry = next(e for e in manifest.entries if e.target["class"] == "liver")
    assert entry.image_meta["window"] == [450.0, 790.0] and entry.image_meta["modality"] == "MR"
    assert "window" not in next(e for e in manifest.entries
                                if e.target["class"] == "femur").image_meta
    base = ModelCard.load(REPO / "models" / "pneumonia-cxr" / "1.0.0")
    card = ModelCard.from_dict(dict(base.to_dict(), labels=["femur", "liver"]), base.folder)
    x, _ = cls_arrays(manifest, [entry], card)
    vol = _read_volume(mr)
    assert volume_window(vol) == (450.0, 790.0)
    windowed = prepare_image_2d(vol.array[0], card, window=volume_window(vol))
    assert np.allclose(x[0], windowed)
    assert not np.allclose(x[0], prepare_image_2d(vol.array[0], card))


def test_value_name_pairs_pick_two_organs_of_a_many_class_label_map(store, tmp_path):
    """TotalSegmentator's MR example has 50 classes; ``VALUE=NAME`` pairs name the two a
    model is for, and every other value is background for it."""
    from medviewer.ai.training.data import label_lut

    ts = DATA / "totalseg" / "tests" / "reference_files"
    csv = _csv(tmp_path, f"{ts / 'example_mr_sm.nii.gz'},{ts / 'example_seg_mr.nii.gz'}\n")
    with pytest.raises(LabelImportError, match="have no name"):
        import_labels(store, csv, label_names=["spleen", "kidney_right"])  # 2 of 50 values
    with pytest.raises(LabelImportError, match="not both"):
        import_labels(store, csv, label_names=["5=liver", "spleen"])
    res = import_labels(store, csv, label_names=["5=liver", "1=spleen"],
                        model_labels=["background", "liver", "spleen"])
    assert res.added == 1
    (rec,) = store.records(kind="labelmap")
    assert rec.payload["table"] == {"labels": [{"value": 1, "name": "spleen"},
                                               {"value": 5, "name": "liver"}]}
    manifest, _ = build_manifest(store, "mr-organs", "segmentation",
                                 ["background", "liver", "spleen"], 2, out_dir=tmp_path / "m")
    (entry, *more) = manifest.entries
    assert entry.target["label_values"] == {"liver": 5, "spleen": 1}
    raw = store.load_labels(rec)
    lut = label_lut(entry.target["label_values"], ["background", "liver", "spleen"],
                    int(raw.max()))
    mapped = lut[raw]
    assert set(np.unique(mapped).tolist()) == {0, 1, 2}
    assert np.array_equal(mapped == 1, raw == 5) and np.array_equal(mapped == 2, raw == 1)
