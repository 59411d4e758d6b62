"""Label store: WAL SQLite, append-only records, lineage, atomic NIfTI arrays that survive kills."""
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from _storage_data import EXAMPLE_CT, HERE, real_seg, wait_for

import medviewer
from medviewer.storage.label_files import read_label_nifti, write_label_nifti
from medviewer.storage.store import Effort, LabelStore, Source, StoreError

MODEL = Source("model", "TotalSegmentator", "2.4.0")
READER = Source("person", "reader1")


@pytest.fixture(scope="module")
def ct_hash():
    return hashlib.sha256(EXAMPLE_CT.read_bytes()).hexdigest()


def test_wal_mode_and_schema_persist(tmp_path):
    store = LabelStore(tmp_path / "ws")
    assert store.journal_mode == "wal"
    store.close()
    con = sqlite3.connect(tmp_path / "ws" / "labels.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == 3
    con.close()
    assert (tmp_path / "ws" / "arrays").is_dir() and (tmp_path / "ws" / "journal").is_dir()


def test_labelmap_round_trip_with_provenance(tmp_path, ct_hash):
    seg, affine = real_seg()
    with LabelStore(tmp_path) as store:
        rec = store.add_labelmap(ct_hash, seg, affine, {"1": "spleen", "5": "liver"},
                                 "predicted", MODEL, effort=Effort(12.5, 3, 4000),
                                 preprocessing={"resample_mm": 1.5, "window": [-1000, 1000]})
    with LabelStore(tmp_path) as store:  # a fresh connection sees the same record
        got = store.get(rec.id)
        assert got == rec
        assert (got.kind, got.tag, got.source, got.image_hash) == ("labelmap", "predicted",
                                                                   MODEL, ct_hash)
        assert got.app_version == medviewer.__version__
        when = datetime.fromisoformat(got.created_at)
        assert when.utcoffset().total_seconds() == 0
        assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 600
        assert got.effort == Effort(12.5, 3, 4000)
        assert got.preprocessing == {"resample_mm": 1.5, "window": [-1000, 1000]}
        assert got.payload["table"] == {"1": "spleen", "5": "liver"}
        assert got.payload["shape"] == list(seg.shape) and got.file.endswith(".nii.gz")
        labels = store.load_labels(got)
        assert labels.dtype == np.uint8 and labels.flags.writeable
        assert np.array_equal(labels, seg)
        assert np.allclose(store.load_affine(got), affine)
        # an ordinary NIfTI that other tools read the same way
        path = store.file_path(got)
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), seg)
        ref = nib.load(str(EXAMPLE_CT))
        assert np.allclose(nib.load(str(path)).affine, ref.affine, atol=1e-4)


def test_uint16_labels_keep_their_dtype_and_bad_arrays_are_refused(tmp_path):
    seg, affine = real_seg()
    wide = seg.astype(np.uint16) * 100  # values up to 10400
    with LabelStore(tmp_path) as store:
        rec = store.add_labelmap("h", wide, affine, {}, "final", READER)
        back = store.load_labels(rec.id)
        assert back.dtype == np.uint16 and np.array_equal(back, wide)
        for bad in (seg.astype(np.int32), seg.astype(np.float32), seg[0]):
            with pytest.raises(ValueError):
                store.add_labelmap("h", bad, affine, {}, "final", READER)
        with pytest.raises(ValueError):
            store.add_labelmap("h", seg, np.zeros((4, 4)), {}, "final", READER)
        assert len(store.records()) == 1
        assert store.orphan_files() == []


def test_lineage_queries_and_validation(tmp_path, ct_hash):
    seg, affine = real_seg()
    with LabelStore(tmp_path) as store:
        pred = store.add_labelmap(ct_hash, seg, affine, {}, "predicted", MODEL)
        fixed = seg.copy()
        fixed[10, 40:60, 40:60] = 7
        corr = store.add_labelmap(ct_hash, fixed, affine, {}, "corrected", READER,
                                  parent_id=pred.id, effort=Effort(30, 1, 400))
        final = store.add_labelmap(ct_hash, fixed, affine, {}, "final", READER,
                                   parent_id=corr.id)
        case = store.add_case_labels(ct_hash, {"series": {"nodule": True}}, "predicted",
                                     Source("model", "cls", "1"))
        other = store.add_case_labels("other-image", {"series": {}}, "final", READER)
        assert [r.id for r in store.records()] == [pred.id, corr.id, final.id, case.id,
                                                   other.id]
        assert [r.id for r in store.records(image_hash=ct_hash, kind="labelmap")] == [
            pred.id, corr.id, final.id]
        assert [r.id for r in store.records(tag="final")] == [final.id, other.id]
        assert store.latest(ct_hash, "labelmap").id == final.id
        assert store.latest(ct_hash, "case").id == case.id
        assert store.latest("nope", "case") is None
        assert [r.id for r in store.children(pred.id)] == [corr.id]
        assert [r.id for r in store.lineage(final.id)] == [final.id, corr.id, pred.id]
        assert np.array_equal(store.load_labels(corr), fixed)
        assert not np.array_equal(store.load_labels(pred), fixed)
        with pytest.raises(StoreError, match="does not exist"):
            store.add_labelmap(ct_hash, seg, affine, {}, "corrected", READER,
                               parent_id="no-such-record")
        with pytest.raises(StoreError, match="another image"):
            store.add_case_labels("other-image", {}, "corrected", READER, parent_id=case.id)
        with pytest.raises(StoreError, match="case record"):
            store.add_labelmap(ct_hash, seg, affine, {}, "corrected", READER,
                               parent_id=case.id)
        with pytest.raises(StoreError):
            store.add_case_labels(ct_hash, {}, "reviewed", READER)
        with pytest.raises(StoreError):
            Source("robot", "x")
        with pytest.raises(StoreError, match="JSON"):
            store.add_case_labels(ct_hash, {"x": object()}, "final", READER)
        assert len(store.records()) == 5


def test_records_are_append_only_in_sql(tmp_path):
    seg, affine = real_seg()
    with LabelStore(tmp_path) as store:
        pred = store.add_labelmap("h", seg, affine, {}, "predicted", MODEL)
        store.add_labelmap("h", seg, affine, {}, "corrected", READER, parent_id=pred.id)
    con = sqlite3.connect(tmp_path / "labels.db")
    for sql in ("UPDATE records SET tag = 'final'", "DELETE FROM records",
                f"DELETE FROM records WHERE id = '{pred.id}'",
                "UPDATE records SET image_hash = 'x' WHERE seq = 1"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    con.execute("INSERT INTO records (id, kind, tag, source_kind, source_name, created_at, "
                "app_version, image_hash, payload) VALUES ('r3', 'case', 'final', 'person', "
                "'p', 't', 'v', 'h', '{}')")  # inserting is what the store is for
    with pytest.raises(sqlite3.IntegrityError):  # a label map row without a file
        con.execute("INSERT INTO records (id, kind, tag, source_kind, source_name, "
                    "created_at, app_version, image_hash, payload) VALUES ('r4', "
                    "'labelmap', 'final', 'person', 'p', 't', 'v', 'h', '{}')")
    con.commit()
    con.close()
    with LabelStore(tmp_path) as store:
        assert [r.tag for r in store.records()] == ["predicted", "corrected", "final"]


_WRITER = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from medviewer.storage.label_files import write_label_nifti
from medviewer.storage.store import LabelStore, Source
rng = np.random.default_rng(1)
big = rng.integers(0, 255, size=(300, 512, 512), dtype=np.uint8)  # incompressible: slow
print("WRITING", flush=True)
if sys.argv[2] == "store":
    LabelStore(sys.argv[3]).add_labelmap("h", big, np.eye(4), {}, "final",
                                         Source("person", "p"))
else:
    write_label_nifti(sys.argv[3], big, np.eye(4))
print("DONE", flush=True)
"""


def _kill_while_writing(mode: str, target, watch_dir) -> None:
    """Run a large label write in a child and SIGKILL it once its temp file is growing."""
    before = set(os.listdir(watch_dir))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(HERE), mode, str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING", proc.stderr.read()

        def temp_growing():
            new = [n for n in os.listdir(watch_dir) if n not in before and n.endswith(".tmp")]
            return any(os.path.getsize(os.path.join(watch_dir, n)) > 1_000_000 for n in new)

        assert wait_for(temp_growing, timeout=30), "the child never started writing its temp file"
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL and "DONE" not in out, err


def test_killed_write_never_replaces_a_good_file(tmp_path):
    seg, affine = real_seg()
    good = tmp_path / "labels.nii.gz"
    write_label_nifti(good, seg, affine)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    _kill_while_writing("file", good, tmp_path)
    assert hashlib.sha256(good.read_bytes()).hexdigest() == digest
    labels, aff = read_label_nifti(good)
    assert np.array_equal(labels, seg) and np.allclose(aff, affine)
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".labels.nii.gz.")


def test_killed_store_write_leaves_db_and_arrays_intact(tmp_path):
    seg, affine = real_seg()
    with LabelStore(tmp_path) as store:
        good = store.add_labelmap("h", seg, affine, {"1": "a"}, "predicted", MODEL)
    _kill_while_writing("store", tmp_path, tmp_path / "arrays")
    with LabelStore(tmp_path) as store:
        assert [r.id for r in store.records()] == [good.id]  # no row for the killed write
        assert np.array_equal(store.load_labels(good), seg)
        for rec in store.records():  # never a row without its file
            assert store.file_path(rec).is_file()
        orphans = store.orphan_files()
        assert len(orphans) == 1 and orphans[0].name.endswith(".tmp")
        assert store.remove_orphans() == 0  # too young: could be a write in progress
        assert store.remove_orphans(min_age_s=0) == 1
        assert store.orphan_files() == [] and store.file_path(good).is_file()
        again = store.add_labelmap("h", seg, affine, {}, "corrected", READER,
                                   parent_id=good.id)
        assert store.get(again.id).parent_id == good.id


def test_no_patient_identifiers_in_the_database(tmp_path, chest_ct_dir):
    import pydicom

    first = sorted(p for p in chest_ct_dir.rglob("*") if p.is_file())[0]
    ds = pydicom.dcmread(first, stop_before_pixels=True)
    seg, affine = real_seg()
    image_hash = hashlib.sha256(first.read_bytes()).hexdigest()
    with LabelStore(tmp_path) as store:
        store.add_labelmap(image_hash, seg, affine, {"1": "nodule"}, "final", READER)
        store.add_case_labels(image_hash, {"series": {"nodule": True}}, "final", READER)
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("labels.db*"))
    assert image_hash.encode() in blob
    for value in (str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))):
        if len(value) >= 3:
            assert value.encode() not in blob
