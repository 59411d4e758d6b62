"""Training manifest: round trip, hash identity, validation of bad input, file verification."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from medviewer.core.manifest import (MANIFEST_VERSION, Manifest, ManifestEntry, sha256_file,
                                     split_unit)

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
REF = DATA / "totalseg" / "tests" / "reference_files"
LABELS = ["background", "liver", "spleen", "kidney"]


def _sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture()
def ws(tmp_path):
    """A workspace-like ws holding a real image and a real label file."""
    (tmp_path / "images").mkdir()
    (tmp_path / "arrays").mkdir()
    shutil.copy(REF / "example_ct_sm.nii.gz", tmp_path / "images" / "img.nii.gz")
    shutil.copy(REF / "example_seg.nii.gz", tmp_path / "arrays" / "lab.nii.gz")
    return tmp_path


def _entry(ws, split="train", z=(3, 4), unit=None):
    return ManifestEntry(
        unit=unit or split_unit("imghash", z[0]), split=split, image="images/img.nii.gz",
        image_sha256=_sha(ws / "images" / "img.nii.gz"), image_hash="imghash",
        image_meta={"modality": "CT", "invert": False, "shape": [30, 101, 122]},
        tag="corrected", record_id="rec1", parent_record_id="rec0",
        predicted_by="ct-abdomen-organs:1.0.0",
        target={"labels": "arrays/lab.nii.gz",
                "labels_sha256": _sha(ws / "arrays" / "lab.nii.gz"), "slices": list(z),
                "label_values": {"liver": 5, "spleen": 1}})


def _manifest(ws, **kw):
    entries = [_entry(ws), _entry(ws, "val", (20,), unit="imghash:z2")]
    return Manifest(model="ct-abdomen-organs", task="segmentation", labels=LABELS,
                    entries=entries, **kw)


def test_save_load_round_trip_resolves_root_against_the_file(ws):
    m = _manifest(ws, root="..", created_at="2025-01-01T00:00:00+00:00")
    path = m.save(ws / "training" / "m" / "manifest.json")
    back = Manifest.load(path)
    assert back == m and back.version == MANIFEST_VERSION
    assert back.root_dir == (ws / "training").resolve()  # ".." from training/m/
    m2 = _manifest(ws, root="../..")
    back2 = Manifest.load(m2.save(ws / "training" / "m" / "manifest2.json"))
    assert back2.root_dir == ws.resolve()
    assert back2.resolve("images/img.nii.gz") == (ws / "images" / "img.nii.gz").resolve()
    back2.verify()
    assert [e.split for e in back2.train_entries()] == ["train"]
    assert [e.target["slices"] for e in back2.val_entries()] == [[20]]
    assert json.loads(path.read_text())["entries"][0]["predicted_by"] == \
        "ct-abdomen-organs:1.0.0"


def test_sha256_ignores_root_and_time_but_not_content(ws):
    a = _manifest(ws, root=".", created_at="t1")
    b = _manifest(ws, root="../x", created_at="t2")
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    c = Manifest(model=a.model, task=a.task, labels=a.labels,
                 entries=[_entry(ws, z=(3,))] + a.entries[1:])
    assert c.sha256 != a.sha256
    d = Manifest(model=a.model, task=a.task, labels=a.labels, entries=a.entries[::-1])
    assert d.sha256 != a.sha256  # order is part of the content


def test_verify_names_the_missing_or_changed_file(ws):
    m = Manifest.load(_manifest(ws).save(ws / "m.json"))
    m.verify()
    (ws / "arrays" / "lab.nii.gz").write_bytes(b"not the labels")
    with pytest.raises(ValueError, match="arrays/lab.nii.gz does not match"):
        m.verify()
    (ws / "images" / "img.nii.gz").unlink()
    with pytest.raises(ValueError, match="images/img.nii.gz is missing"):
        m.verify()


def test_classification_entries(ws):
    e = ManifestEntry(unit="h1", split="val", image="images/img.nii.gz",
                      image_sha256=sha256_file(ws / "images" / "img.nii.gz"), image_hash="h1",
                      image_meta={"modality": "CR", "invert": True, "shape": [1, 28, 28]},
                      tag="final", record_id="r", parent_record_id=None, predicted_by=None,
                      target={"class": "pneumonia", "slice": 0})
    m = Manifest(model="pneumonia-cxr", task="classification", labels=["normal", "pneumonia"],
                 entries=[e])
    back = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m and back.val_entries() == [e]
    bad = m.to_dict()
    bad["entries"][0]["target"]["class"] = "covid"
    with pytest.raises(ValueError, match="'covid' is not one of the model's labels"):
        Manifest.from_dict(bad)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("model"), "lacks 'model'"),
    (lambda d: d.update(task="detection"), "task must be one of"),
    (lambda d: d.update(version=MANIFEST_VERSION + 1), "newer than this app"),
    (lambda d: d.update(labels=[]), "non-empty list"),
    (lambda d: d["entries"][0].update(split="test"), "entry 0: split must be one of"),
    (lambda d: d["entries"][1].update(tag="predicted"), "entry 1: tag must be one of"),
    (lambda d: d["entries"][0].update(image="/etc/passwd"), "relative path"),
    (lambda d: d["entries"][0].update(image="../../x.nii.gz"), "relative path"),
    (lambda d: d["entries"][0].update(image_sha256="abc"), "sha256"),
    (lambda d: d["entries"][0]["target"].update(slices=[]), "slices"),
    (lambda d: d["entries"][0]["target"].update(slices=[True]), "slices"),
    (lambda d: d["entries"][0]["target"]["label_values"].update(lung=3), "'lung' is not"),
    (lambda d: d["entries"][0]["target"].pop("labels_sha256"), "lacks 'labels_sha256'"),
    (lambda d: d["entries"][0].update(predicted_by=3), "predicted_by"),
])
def test_bad_input_is_refused_with_a_clear_message(ws, mutate, message):
    d = json.loads(json.dumps(_manifest(ws).to_dict()))
    mutate(d)
    with pytest.raises(ValueError, match=message):
        Manifest.from_dict(d)


def test_load_reports_unreadable_files(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Manifest.load(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="cannot read manifest"):
        Manifest.load(tmp_path / "absent.json")
