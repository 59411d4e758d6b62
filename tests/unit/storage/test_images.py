"""Image snapshots in the label store: written once, voxels/dtype/geometry kept, v1 upgrade."""
import sqlite3
import threading

import nibabel as nib
import numpy as np
import pydicom.data
import pytest
from _storage_data import EXAMPLE_CT

from medviewer.core.hashing import image_hash
from medviewer.io.load import open_first
from medviewer.io.volume_files import read_volume_file
from medviewer.storage.store import LabelStore, Source, StoreError


@pytest.fixture(scope="module")
def ct():
    return read_volume_file(EXAMPLE_CT)


def test_ct_snapshot_round_trip_keeps_voxels_dtype_and_geometry(tmp_path, ct):
    with LabelStore(tmp_path) as store:
        h = store.add_image(ct, source_paths=[str(EXAMPLE_CT)])
        assert h == image_hash(ct)
        assert store.has_image(h)
        path = store.image_file(h)
        assert path == tmp_path.resolve() / "images" / f"{h}.nii.gz" and path.is_file()
        info = store.image_info(h)
        assert info["modality"] == "CT" and info["invert"] is False
        assert info["shape"] == [30, 101, 122] and info["dtype"] == "int16"
        assert info["source_paths"] == [str(EXAMPLE_CT)]
        assert info["file"] == f"images/{h}.nii.gz"
        back = store.load_image(h)
    assert back.array.dtype == np.int16 and np.array_equal(back.array, ct.array)
    assert np.allclose(back.geometry.affine_ras(), ct.geometry.affine_ras(), atol=1e-5)
    assert image_hash(back) == h  # the snapshot is the same image, bit for bit
    # an ordinary NIfTI other tools read with the original affine
    ref = nib.load(str(EXAMPLE_CT))
    snap = nib.load(str(path))
    assert np.allclose(snap.affine, ref.affine, atol=1e-4)
    assert np.array_equal(np.asarray(snap.dataobj), np.asarray(ref.dataobj))


def test_snapshot_is_written_once_and_rows_are_immutable(tmp_path, ct):
    with LabelStore(tmp_path) as store:
        h = store.add_image(ct, source_paths=["/first/place"])
        stat = store.image_file(h).stat()
        assert store.add_image(ct, image_hash=h, source_paths=["/elsewhere"]) == h
        assert store.image_file(h).stat().st_mtime_ns == stat.st_mtime_ns
        assert store.image_info(h)["source_paths"] == ["/first/place"]
        assert store.image_hashes() == [h]
        with pytest.raises(sqlite3.DatabaseError, match="written once"):
            store._db.execute("DELETE FROM images")
        with pytest.raises(sqlite3.DatabaseError, match="written once"):
            store._db.execute("UPDATE images SET file = 'x'")
        with pytest.raises(StoreError):
            store.add_image(ct, image_hash="../escape")


def test_concurrent_adds_of_one_image_give_one_row_and_one_file(tmp_path, ct):
    store = LabelStore(tmp_path)
    errors = []

    def add():
        try:
            other = LabelStore(tmp_path)  # separate connections, like two workers
            other.add_image(ct)
            other.close()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.image_hashes()) == 1
    assert [p.name for p in (tmp_path / "images").iterdir()] == [f"{image_hash(ct)}.nii.gz"]
    assert np.array_equal(store.load_image(image_hash(ct)).array, ct.array)
    store.close()


def test_radiograph_snapshot_is_1_y_x_and_keeps_monochrome1(tmp_path):
    cr = open_first([pydicom.data.get_testdata_file("RG1_UNCI.dcm")])
    with LabelStore(tmp_path) as store:
        h = store.add_image(cr)
        info = store.image_info(h)
        assert info["invert"] is True and info["modality"] == "CR"
        assert info["shape"] == [1, 1955, 1841] and info["dtype"] == "uint16"
        back = store.load_image(h)
        assert back.invert and back.array.shape == (1, 1955, 1841)
        assert np.array_equal(back.array, cr.array)


def test_rgb_snapshot_round_trip(tmp_path):
    rgb = open_first([pydicom.data.get_testdata_file("SC_rgb.dcm")])
    with LabelStore(tmp_path) as store:
        h = store.add_image(rgb)
        back = store.load_image(h)
    assert back.array.shape == (1, 100, 100, 3) and back.array.dtype == np.uint8
    assert np.array_equal(back.array, rgb.array)


def test_unknown_image_has_no_snapshot(tmp_path):
    with LabelStore(tmp_path) as store:
        assert not store.has_image("0" * 64)
        assert store.image_file("0" * 64) is None and store.image_info("0" * 64) is None
        with pytest.raises(StoreError):
            store.load_image("0" * 64)


V1_SCHEMA = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    tag TEXT NOT NULL, source_kind TEXT NOT NULL, source_name TEXT NOT NULL,
    source_version TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,
    app_version TEXT NOT NULL, image_hash TEXT NOT NULL, parent_id TEXT, file TEXT,
    payload TEXT NOT NULL, effort_seconds REAL NOT NULL DEFAULT 0,
    effort_strokes INTEGER NOT NULL DEFAULT 0, effort_voxels INTEGER NOT NULL DEFAULT 0,
    preprocessing TEXT);
INSERT INTO records (id, kind, tag, source_kind, source_name, created_at, app_version,
                     image_hash, payload)
VALUES ('r1', 'case', 'final', 'person', 'reader', '2024-01-01T00:00:00+00:00', '0.3',
        'h1', '{"classes": {}}');
PRAGMA user_version = 1;
"""


def test_schema_1_database_is_upgraded_in_place(tmp_path, ct):
    con = sqlite3.connect(tmp_path / "labels.db")
    con.executescript(V1_SCHEMA)
    con.close()
    with LabelStore(tmp_path) as store:
        assert store.get("r1").tag == "final"  # old records untouched
        h = store.add_image(ct)
        assert store.assign_splits("m", ["a", "b"]) and store.has_image(h)
        rec = store.add_case_labels("h1", {"classes": {}}, "final", Source("person", "r"),
                                    parent_id="r1")
        assert rec.parent_id == "r1"
    con = sqlite3.connect(tmp_path / "labels.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == 3
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"records", "images", "splits", "prompt_records"} <= tables
    con.execute("PRAGMA user_version = 4")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer"):
        LabelStore(tmp_path)
