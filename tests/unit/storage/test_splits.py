"""Frozen train/val splits: deterministic, assigned once, validation is final, per model name."""
import hashlib
import sqlite3

import pytest
from _storage_data import EXAMPLE_CT, TOTALSEG

from medviewer.core.manifest import split_unit, unit_image_hash
from medviewer.storage.store import LabelStore
from medviewer.storage.store_splits import unit_score


def _hashes(n):
    """Real content hashes: sha256 of real files' bytes, then derived per index."""
    base = hashlib.sha256(EXAMPLE_CT.read_bytes()).hexdigest()
    return [hashlib.sha256(f"{base}{i}".encode()).hexdigest() for i in range(n)]


def test_split_unit_slabs_of_eight():
    h = _hashes(1)[0]
    assert split_unit(h) == h
    assert split_unit(h, 0) == split_unit(h, 7) == f"{h}:z0"
    assert split_unit(h, 8) == f"{h}:z1" and split_unit(h, 17, slab=4) == f"{h}:z4"
    assert unit_image_hash(split_unit(h, 40)) == h
    with pytest.raises(ValueError):
        split_unit(f"{h}:z1", 3)


def test_assignment_is_deterministic_roughly_fractional_and_frozen(tmp_path):
    units = _hashes(200)
    with LabelStore(tmp_path / "a") as a, LabelStore(tmp_path / "b") as b:
        first = a.assign_splits("ct-abdomen-organs", units[:120], val_fraction=0.2)
        # the same units in another workspace, in another order, in two batches
        b.assign_splits("ct-abdomen-organs", units[119::-1][:60])
        b.assign_splits("ct-abdomen-organs", units[:120])
        assert b.splits("ct-abdomen-organs") == first
        n_val = sum(s == "val" for s in first.values())
        assert 10 <= n_val <= 40  # ~24 expected
        # a later call with a higher fraction never moves assigned units
        again = a.assign_splits("ct-abdomen-organs", units, val_fraction=0.5)
        assert {u: again[u] for u in units[:120]} == first
        assert sum(again[u] == "val" for u in units[120:]) > 20  # new ones at ~0.5
        # 'name:version' is the same model as 'name'; other models split independently
        assert a.splits("ct-abdomen-organs:1.1.0") == a.splits("ct-abdomen-organs")
        other = a.assign_splits("pneumonia-cxr", units[:120])
        assert other != first


def test_small_sets_always_get_one_validation_unit(tmp_path):
    units = _hashes(40)
    with LabelStore(tmp_path) as store:
        # a pair that the fraction alone would put both in train, for both models
        pair = [u for u in units
                if min(unit_score("m", u), unit_score("single", u)) >= 0.2][:2]
        got = store.assign_splits("m", pair, val_fraction=0.2)
        assert sorted(got.values()) == ["train", "val"]
        assert store.assign_splits("single", pair[:1]) == {pair[0]: "train"}
        # fraction 0 still keeps one validation unit once there are two
        got0 = store.assign_splits("zero", pair, val_fraction=0.0)
        assert sorted(got0.values()) == ["train", "val"]


def test_mark_validation_is_final_and_append_only(tmp_path):
    units = _hashes(12)
    with LabelStore(tmp_path) as store:
        got = store.assign_splits("m", units)
        train_unit = next(u for u in units if got[u] == "train")
        assert store.mark_validation("m", train_unit) == "val"
        assert store.split_of("m", train_unit) == "val"
        assert store.assign_splits("m", [train_unit])[train_unit] == "val"
        brand_new = hashlib.sha256(b"new" + TOTALSEG.name.encode()).hexdigest()
        assert store.split_of("m", brand_new) is None
        store.mark_validation("m", brand_new)
        assert store.splits("m")[brand_new] == "val"
        n_rows = store._db.execute("SELECT COUNT(*) FROM splits").fetchone()[0]
        store.mark_validation("m", brand_new)  # already val: nothing appended
        assert store._db.execute("SELECT COUNT(*) FROM splits").fetchone()[0] == n_rows
        with pytest.raises(sqlite3.DatabaseError, match="never goes back"):
            store._db.execute("INSERT INTO splits (model, unit, split, reason, created_at) "
                              "VALUES ('m', ?, 'train', 'user', 'now')", (train_unit,))
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store._db.execute("DELETE FROM splits")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store._db.execute("UPDATE splits SET split = 'train'")
    with LabelStore(tmp_path) as store:  # persists
        assert store.split_of("m", train_unit) == "val"
        with pytest.raises(ValueError):
            store.assign_splits("m", units, val_fraction=1.5)
