"""Review queue: open predictions only, newest per image, most uncertain first, scoreless last."""
import math
import sys
from pathlib import Path

import numpy as np
from _storage_data import EXAMPLE_CT, real_seg

from medviewer.core.hashing import image_hash
from medviewer.io.volume_files import read_volume_file
from medviewer.storage.review import review_queue
from medviewer.storage.store import LabelStore, Source

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from learn_fixtures import cls_cases  # noqa: E402

V1 = Source("model", "ct-abdomen-organs", "1.0.0")
V2 = Source("model", "ct-abdomen-organs", "1.1.0")
READER = Source("person", "reader")
TABLE = {"labels": [{"value": 1, "name": "spleen"}, {"value": 5, "name": "liver"}]}


def _case(store, h, score, source=V1, label="pneumonia"):
    payload = {"classes": ["normal", "pneumonia"], "series": {label: True}, "slices": {},
               "prediction": {"model": f"{source.name}:{source.version}", "label": label,
                              "probabilities": {}, "slice": 0, "case_uncertainty": score}}
    return store.add_case_labels(h, payload, "predicted", source)


def test_queue_ranks_open_predictions(tmp_path):
    seg, aff = real_seg()
    vol = read_volume_file(EXAMPLE_CT)
    h0 = image_hash(vol)
    hs = [f"{h0[:-2]}{i:02d}" for i in range(6)]  # other images: distinct content hashes
    with LabelStore(tmp_path) as store:
        store.add_image(vol, h0, source_paths=[str(EXAMPLE_CT)])
        # image 0: segmented twice; the newer v2 prediction is the open one
        store.add_labelmap(h0, seg, aff, TABLE, "predicted", V1,
                           extra={"case_uncertainty": 0.9})
        newer = store.add_labelmap(h0, seg, aff, TABLE, "predicted", V2,
                                   extra={"case_uncertainty": 0.3})
        # image 1: predicted then corrected -> not in the queue
        p = store.add_labelmap(hs[1], seg, aff, TABLE, "predicted", V1,
                               extra={"case_uncertainty": 0.99})
        store.add_labelmap(hs[1], seg, aff, TABLE, "corrected", READER, parent_id=p.id)
        # image 2: a case prediction, very uncertain; image 3: no score; image 4: NaN-ish
        c2 = _case(store, hs[2], 0.7)
        c3 = _case(store, hs[3], None)
        c4 = store.add_labelmap(hs[4], seg, aff, TABLE, "predicted", V1,
                                extra={"case_uncertainty": None})
        # image 5: then predicted by another model and reviewed: with no model chosen the
        # newest prediction of the image counts (reviewed: not queued); for our model, ours
        c5 = _case(store, hs[5], 0.1)
        other = _case(store, hs[5], 0.5, Source("model", "pneumonia-cxr", "1.0.0"))
        store.add_case_labels(hs[5], {"classes": [], "series": {}, "slices": {}}, "final",
                              READER, parent_id=other.id)
        q = review_queue(store)
        assert [i.record_id for i in q] == [c2.id, newer.id, c4.id, c3.id]
        assert [round(i.uncertainty, 2) for i in q[:2]] == [0.7, 0.3]
        assert all(math.isnan(i.uncertainty) and not i.has_score for i in q[2:])
        ours = review_queue(store, "ct-abdomen-organs")
        assert [i.record_id for i in ours] == [c2.id, newer.id, c5.id, c4.id, c3.id]
        first = q[1]
        assert (first.image_hash, first.model_ref, first.kind) == (h0, "ct-abdomen-organs:1.1.0",
                                                                   "labelmap")
        assert first.source_paths == [str(EXAMPLE_CT)] and q[0].source_paths == []
        assert first.created_at == newer.created_at
        # model filters: by name (any version) and by one version
        assert [i.record_id for i in review_queue(store, "pneumonia-cxr")] == []
        v1 = review_queue(store, "ct-abdomen-organs:1.0.0")
        assert v1[0].uncertainty == 0.9 and v1[0].image_hash == h0  # v1's own newest
        # reviewing the top item removes it
        store.add_case_labels(hs[2], {"classes": [], "series": {}, "slices": {}}, "final",
                              READER, parent_id=c2.id)
        assert review_queue(store)[0].record_id == newer.id


def test_real_predictions_all_reviewed_leave_an_empty_queue(tmp_path):
    with LabelStore(tmp_path) as store:
        out = cls_cases(store, n=6)
        assert review_queue(store) == []
        # predict the same shifted images again (a new run): everything is open again,
        # ranked by the stored real entropy
        for c in out["cases"]:
            _case(store, c["image_hash"], c["uncertainty"], Source("model", "pneumonia-cxr",
                                                                   "1.0.0"))
        q = review_queue(store, "pneumonia-cxr")
        assert len(q) == 6
        scores = [i.uncertainty for i in q]
        assert scores == sorted(scores, reverse=True) and np.all(np.isfinite(scores))
        assert all(i.source_paths[0].startswith("pneumoniamnist:") for i in q)
