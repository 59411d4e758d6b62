"""Exports with the anonymise option, on real CT slices with a planted patient identity:
the label map's sidecar and the case-label CSV/JSON name the patient by the workspace's
pseudonym (the same in both) with the study and series UIDs, or with anonymise off by name
and ID; the pseudonym key is made once, private, and shared by concurrent makers."""
import csv
import json
import os
import stat
import sys
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medviewer.core.deid import identity_values, pseudonym, redact, subject_block
from medviewer.io.load import open_first
from medviewer.services import exports
from medviewer.services.annotations import store_case_labels
from medviewer.storage.store import LabelStore, Source

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: phi_fixtures
from phi_fixtures import NAME, PATIENT_ID, find_phi, planted_study  # noqa: E402

TABLE = {"labels": [{"value": 2, "name": "Nodule", "color": [250, 10, 10]}]}


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    return open_first([planted_study(tmp_path_factory.mktemp("phi") / "study", n=3)])


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv(exports.ENV_PSEUDONYM_KEY, raising=False)


def test_label_map_sidecar_names_the_patient_only_when_asked(volume, tmp_path):
    labels = np.zeros(volume.shape, np.uint8)
    labels[1, 100:140, 100:180] = 2
    ws, out = tmp_path / "ws", tmp_path / "out"
    path = exports.export_label_map(labels, TABLE, volume.geometry, out / "a.nii.gz",
                                    source=volume, key_folder=ws)
    np.testing.assert_array_equal(np.asarray(nib.load(str(path)).dataobj).T, labels)
    doc = json.loads((out / "a.labels.json").read_text())
    assert doc["labels"] == [{"value": 2, "name": "Nodule", "color": [250, 10, 10]}]
    key = bytes.fromhex((ws / exports.KEY_FILE).read_text())
    src = pydicom.dcmread(volume.source_paths[0], stop_before_pixels=True)
    assert doc["subject"] == {"anonymised": True, "patient": pseudonym(PATIENT_ID, key),
                              "study_uid": src.StudyInstanceUID,
                              "series_uid": src.SeriesInstanceUID}
    assert find_phi(out) == {}
    exports.export_label_map(labels, TABLE, volume.geometry, out / "b.nrrd", source=volume,
                             anonymise=False, key_folder=ws)
    named = json.loads((out / "b.labels.json").read_text())["subject"]
    assert (named["patient_name"], named["patient_id"]) == (NAME, PATIENT_ID)
    assert "patient" not in named and not named["anonymised"]


def _case_store(volume, ws):
    store = LabelStore(ws)
    h = "c" * 64
    store_case_labels(store, volume, h, {"classes": ["nodule"], "series": {"nodule": True}},
                      "corrected", Source("person", "reader1"))
    return store, h


def test_case_labels_carry_the_same_pseudonym_or_the_patient(volume, tmp_path):
    ws = tmp_path / "ws"
    store, h = _case_store(volume, ws)
    try:
        out = exports.export_case_labels(store, tmp_path / "cases.csv")
        rows = list(csv.DictReader(open(out, newline="")))
        key = exports.pseudonym_key(ws)
        assert [(r["image_hash"], r["patient"], r["class"]) for r in rows] == [
            (h, pseudonym(PATIENT_ID, key), "nodule")]
        assert rows[0]["study_uid"] == volume.meta["StudyInstanceUID"]
        doc = json.loads(exports.export_case_labels(store, tmp_path / "cases.json").read_text())
        assert doc["records"][0]["subject"]["patient"] == rows[0]["patient"]
        assert find_phi(tmp_path, skip=[ws]) == {}
        named = exports.export_case_labels(store, tmp_path / "named.csv", anonymise=False)
        row = next(csv.DictReader(open(named, newline="")))
        assert (row["patient_name"], row["patient_id"]) == (NAME, PATIENT_ID)
    finally:
        store.close()


def test_pseudonym_key_is_private_made_once_and_agreed_by_concurrent_makers(tmp_path,
                                                                            monkeypatch):
    keys, errors = [], []

    def make():
        try:
            keys.append(exports.pseudonym_key(tmp_path / "ws"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) == 32
    path = tmp_path / "ws" / exports.KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [exports.KEY_FILE]  # no temps
    monkeypatch.setenv(exports.ENV_PSEUDONYM_KEY, "ab" * 16)
    assert exports.pseudonym_key(tmp_path / "ws") == bytes([0xAB]) * 16
    monkeypatch.setenv(exports.ENV_PSEUDONYM_KEY, "abcd")
    with pytest.raises(ValueError, match="16 bytes"):
        exports.pseudonym_key()
    monkeypatch.delenv(exports.ENV_PSEUDONYM_KEY)
    path.write_text("not a key\n")
    with pytest.raises(ValueError, match="not a pseudonym key"):
        exports.pseudonym_key(tmp_path / "ws")


def test_pseudonym_redaction_and_subject_block():
    key = b"k" * 32
    assert pseudonym("A123", key) == pseudonym("A123", key) != pseudonym("A124", key)
    assert pseudonym("A123", key) != pseudonym("A123", b"j" * 32)
    with pytest.raises(ValueError):
        pseudonym("A123", b"short")
    meta = {"PatientName": "Doe^Jane", "PatientID": "A123", "StudyInstanceUID": "1.2"}
    assert identity_values(meta) == ["Doe^Jane", "A123", "Jane", "Doe"]
    assert redact("CT of jane DOE (A123)", identity_values(meta)) == \
        "CT of (hidden) (hidden) ((hidden))"
    assert subject_block(meta, True, key) == {"anonymised": True, "study_uid": "1.2",
                                              "series_uid": "", "patient": pseudonym("A123", key)}
    assert subject_block({}, True, None)["patient"] == ""


def test_a_batch_folder_keeps_one_anonymise_setting(tmp_path):
    """Results with and without patient names never mix in one batch folder; folders from
    before the option (anonymised sidecars then held no identity) resume as anonymised."""
    from types import SimpleNamespace

    from medviewer.services.batch import CONFIG_FILE, BatchError, BatchOptions, bind_folder

    card = SimpleNamespace(ref="m:1", task="segmentation")
    out = tmp_path / "batch"
    bind_folder(out, card, BatchOptions(out, slice=1))
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["anonymise"] is True
    with pytest.raises(BatchError):
        bind_folder(out, card, BatchOptions(out, slice=1, anonymise=False))
    del config["anonymise"]
    (out / CONFIG_FILE).write_text(json.dumps(config))
    bind_folder(out, card, BatchOptions(out, slice=1))  # an older folder: resumes
    bind_folder(out, card, BatchOptions(out, slice=1, anonymise=False, redo=True))
    assert json.loads((out / CONFIG_FILE).read_text())["anonymise"] is False
