"""The label history of an image through services.annotations on a real store: records newest
first with tag, source, effort and OOD score; open and compare records."""
from __future__ import annotations

import numpy as np

from medviewer.services.annotations import compare_records, label_history, load_record, ood_score
from medviewer.storage.store import LabelStore, Source

from _storage_data import real_seg


def test_history_lists_records_with_ood_and_compares_them(tmp_path):
    labels, affine = real_seg()
    fixed = labels.copy()
    fixed[labels == 5] = 0  # a person removed one organ and relabelled another
    fixed[labels == 2] = 200  # a value the model never uses
    table = {"labels": [{"value": int(v), "name": f"organ {v}"} for v in np.unique(labels) if v]}
    with LabelStore(tmp_path / "ws") as store:
        pred = store.add_labelmap("h1", labels, affine, table, "predicted",
                                  Source("model", "totalseg", "2.0"),
                                  extra={"case_uncertainty": 0.1, "ood_score": 0.73})
        corr = store.add_labelmap("h1", fixed, affine, table, "corrected", Source("person", "ann"),
                                  parent_id=pred.id, effort=(12.5, 3, 400),
                                  extra={"reverted_to": pred.id})
        store.add_labelmap("h2", labels, affine, table, "predicted", Source("model", "x", "1"))
        hist = label_history(store, "h1")
        assert [e.id for e in hist] == [corr.id, pred.id]
        assert (hist[0].tag, hist[0].source, hist[0].effort) == ("corrected", "ann", (12.5, 3, 400))
        assert hist[0].ood is None and hist[0].note.startswith("reverted to")
        assert (hist[1].source, hist[1].ood) == ("totalseg 2.0", 0.73)
        got, got_table, rec = load_record(store, pred.id)
        assert np.array_equal(got, labels) and got_table == table and rec.id == pred.id
        cmp, names = compare_records(store, pred.id, corr.id)
        assert cmp.dice[5] == 0.0 and cmp.dice[2] == 0.0 and cmp.dice[200] == 0.0
        assert cmp.differ == int(np.count_nonzero(labels != fixed))
        assert names[2] == "organ 2"
    assert ood_score({"prediction": {"ood": {"score": 2.5, "method": "mahalanobis"}}}) == 2.5
    assert ood_score({"extra": {"ood_flag": True}}) is None
