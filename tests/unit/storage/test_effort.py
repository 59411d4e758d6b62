"""Effort view: effort summed over each correction chain, grouped by the predicting version."""
import sys
from pathlib import Path

import pytest
from _storage_data import real_seg

from medviewer.storage.effort import effort_by_version, effort_per_case
from medviewer.storage.store import Effort, LabelStore, Source

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from learn_fixtures import cls_cases  # noqa: E402

TABLE = {"labels": [{"value": 1, "name": "spleen"}, {"value": 5, "name": "liver"}]}
READER = Source("person", "reader")


def _v(version):
    return Source("model", "ct-abdomen-organs", version)


def test_effort_per_case_and_by_version(tmp_path):
    seg, aff = real_seg()
    with LabelStore(tmp_path) as store:
        # v1.0.0: two cases, one corrected in two sittings, one accepted quickly
        p = store.add_labelmap("a", seg, aff, TABLE, "predicted", _v("1.0.0"))
        c1 = store.add_labelmap("a", seg, aff, TABLE, "corrected", READER, parent_id=p.id,
                                effort=Effort(100, 10, 5000))
        c2 = store.add_labelmap("a", seg, aff, TABLE, "final", READER, parent_id=c1.id,
                                effort=Effort(20, 2, 300))
        q = store.add_labelmap("b", seg, aff, TABLE, "predicted", _v("1.0.0"))
        store.add_labelmap("b", seg, aff, TABLE, "final", READER, parent_id=q.id,
                           effort=Effort(6, 0, 0))
        # v1.10.0 (sorts after 1.2.0): one case; v1.2.0: one open prediction only
        r = store.add_labelmap("a", seg, aff, TABLE, "predicted", _v("1.10.0"))
        store.add_labelmap("a", seg, aff, TABLE, "corrected", READER, parent_id=r.id,
                           effort=Effort(30, 3, 700))
        store.add_labelmap("c", seg, aff, TABLE, "predicted", _v("1.2.0"))
        s = store.add_labelmap("c", seg, aff, TABLE, "predicted", _v("1.2.0"))
        store.add_labelmap("c", seg, aff, TABLE, "corrected", READER, parent_id=s.id,
                           effort=Effort(40, 4, 900))
        # a person's own labels (no prediction) are no model's effort
        store.add_labelmap("d", seg, aff, TABLE, "final", READER, effort=Effort(999, 9, 9))

        rows = effort_per_case(store)
        assert [(r.image_hash, r.model_ref, r.tag, r.seconds, r.strokes, r.voxels)
                for r in rows] == [
            ("a", "ct-abdomen-organs:1.0.0", "final", 120.0, 12, 5300),
            ("b", "ct-abdomen-organs:1.0.0", "final", 6.0, 0, 0),
            ("a", "ct-abdomen-organs:1.10.0", "corrected", 30.0, 3, 700),
            ("c", "ct-abdomen-organs:1.2.0", "corrected", 40.0, 4, 900)]
        assert rows[0].record_id == c2.id
        groups = effort_by_version(store)
        assert [g.model_ref for g in groups] == ["ct-abdomen-organs:1.0.0",
                                                 "ct-abdomen-organs:1.2.0",
                                                 "ct-abdomen-organs:1.10.0"]
        g = groups[0]
        assert (g.cases, g.seconds, g.strokes, g.voxels) == (2, 126.0, 12, 5300)
        assert g.seconds_per_case == pytest.approx(63.0) and g.voxels_per_case == 2650.0
        assert [g.cases for g in effort_by_version(store, "ct-abdomen-organs:1.2.0")] == [1]
        assert effort_by_version(store, "pneumonia-cxr") == []


def test_real_reviews_give_effort_per_case(tmp_path):
    with LabelStore(tmp_path) as store:
        out = cls_cases(store, n=8)
        rows = effort_per_case(store, "pneumonia-cxr")
        assert len(rows) == 8 and {r.model_ref for r in rows} == {"pneumonia-cxr:1.0.0"}
        tags = {c["review_id"]: c["tag"] for c in out["cases"]}
        assert all(tags[r.record_id] == r.tag for r in rows)
        changed = [r for r in rows if r.tag == "corrected"]
        accepted = [r for r in rows if r.tag == "final"]
        assert len(changed) == out["n_corrected"]
        # the scripted reader takes longer to change a prediction than to accept it
        if changed and accepted:
            assert min(r.seconds for r in changed) > 2 and max(r.seconds for r in accepted) < 6
        (g,) = effort_by_version(store)
        assert g.cases == 8 and g.seconds == pytest.approx(sum(r.seconds for r in rows))
