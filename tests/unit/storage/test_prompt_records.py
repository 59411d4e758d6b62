"""Prompt records in the label store: accepted interactive results with their prompts, stored
through the services function the Prompt tool calls (real CT + TotalSegmentator masks)."""
import sqlite3

import nibabel as nib
import numpy as np
import pytest
from _storage_data import EXAMPLE_CT

from medviewer.core.hashing import image_hash
from medviewer.io.volume_files import read_volume_file
from medviewer.services.prompt_records import (count_prompt_records, delete_prompt_record,
                                               list_prompt_records, load_prompt_mask,
                                               store_prompt_record)
from medviewer.storage.store import LabelStore, StoreError

SEG = EXAMPLE_CT.parent / "example_seg.nii.gz"


@pytest.fixture(scope="module")
def ct():
    return read_volume_file(EXAMPLE_CT)


@pytest.fixture(scope="module")
def seg():
    return np.ascontiguousarray(np.asarray(nib.load(str(SEG)).dataobj).T)  # (z, y, x)


def _record(z, mask2d, plane="axial"):
    ys, xs = np.nonzero(mask2d)
    c = len(ys) // 2
    return {"engine": "learned", "plane": plane, "slice": z,
            "prompts": {"points": [[z, int(ys[c]), int(xs[c]), True], [z, 0, 0, False]],
                        "boxes": [[z, int(ys.min()), int(xs.min()), int(ys.max()),
                                   int(xs.max())]],
                        "scribbles": [{"voxels": [[z, int(ys[0]), int(xs[0])]],
                                       "positive": True}]}}


def test_round_trip_list_count_load_delete(tmp_path, ct, seg):
    liver = seg == 5
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    with LabelStore(tmp_path) as store:
        rid = store_prompt_record(store, None, _record(z, liver[z]), liver, volume=ct)
        h = image_hash(ct)
        assert store.has_image(h)  # the snapshot training needs came with the first record
        # a coronal record with a 2D mask, through the image hash alone
        kidney = seg == 2
        y = int(np.argmax(kidney.sum(axis=(0, 2))))
        rec2 = _record(0, kidney[:, y, :], plane="coronal")
        rid2 = store_prompt_record(store, h, rec2, kidney[:, y, :])
        rows = list_prompt_records(store)
        assert [r.id for r in rows] == [rid, rid2]
        r = rows[0]
        assert (r.image_hash, r.engine, r.plane, r.slice, r.n_prompts) == (h, "learned",
                                                                           "axial", z, 4)
        assert r.prompts["points"][1] == [z, 0, 0, False]
        assert r.mask_shape == (101, 122) and r.mask_voxels == int(liver[z].sum())
        assert np.array_equal(load_prompt_mask(store, rid), liver[z])
        assert np.array_equal(store.load_prompt_mask(rid2), kidney[:, y, :])
        assert count_prompt_records(store) == 2 and count_prompt_records(store, h) == 2
        assert count_prompt_records(store, "another-image") == 0
        assert delete_prompt_record(store, rid) is True
        assert delete_prompt_record(store, rid) is False
        assert [r.id for r in list_prompt_records(store)] == [rid2]
    with LabelStore(tmp_path) as store:  # persisted
        assert store.prompt_record_count() == 1
    con = sqlite3.connect(tmp_path / "labels.db")
    with pytest.raises(sqlite3.DatabaseError, match="never changed"):
        con.execute("UPDATE prompt_records SET slice = 1")
    con.close()


def test_bad_records_are_refused(tmp_path, ct, seg):
    liver = seg == 5
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    with LabelStore(tmp_path) as store:
        with pytest.raises(ValueError, match="does not match"):
            store_prompt_record(store, None, _record(z, liver[z]), liver[z][:50], volume=ct)
        with pytest.raises(ValueError, match="plane"):
            store_prompt_record(store, None, dict(_record(z, liver[z]), plane="oblique"),
                                liver, volume=ct)
        with pytest.raises(StoreError, match="bad prompts"):
            store_prompt_record(store, None, dict(_record(z, liver[z]),
                                                  prompts={"points": [[z, -1, 3, True]]}),
                                liver, volume=ct)
        with pytest.raises(ValueError, match="outside"):
            store_prompt_record(store, None, dict(_record(z, liver[z]), slice=99), liver,
                                volume=ct)
        assert store.prompt_record_count() == 0
