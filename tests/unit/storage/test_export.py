"""Case-label export: CSV row per record x class (+ set slice findings), JSON, atomic files."""
import csv
import hashlib
import json

import pytest
from _storage_data import EXAMPLE_CT, real_seg

from medviewer.storage.export import case_findings, export_case_labels
from medviewer.storage.store import LabelStore, Source

CLASSES = ["normal", "pneumonia", "nodule", "effusion"]


@pytest.fixture()
def store_with_cases(tmp_path):
    image_hash = hashlib.sha256(EXAMPLE_CT.read_bytes()).hexdigest()
    store = LabelStore(tmp_path / "ws")
    pred = store.add_case_labels(
        image_hash, {"classes": CLASSES,
                     "series": {"normal": False, "pneumonia": None, "nodule": True,
                                "effusion": False},
                     "slices": {"12": {"nodule": True}, "3": {"effusion": False}}},
        "predicted", Source("model", "chest-cls", "1.2"))
    corr = store.add_case_labels(
        image_hash, {"classes": CLASSES, "series": {"nodule": True, "effusion": True}},
        "corrected", Source("person", "reader1"), parent_id=pred.id)
    yield store, image_hash, pred, corr
    store.close()


def test_csv_has_one_row_per_record_and_class(tmp_path, store_with_cases):
    store, image_hash, pred, corr = store_with_cases
    out = export_case_labels(store.records(kind="case"), tmp_path / "cases.csv")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    series = [r for r in rows if r["slice"] == ""]
    assert len(series) == 2 * len(CLASSES)
    assert [r["class"] for r in series] == CLASSES * 2
    assert {r["image_hash"] for r in rows} == {image_hash}
    first = {r["class"]: r["present"] for r in series if r["record_id"] == pred.id}
    assert first == {"normal": "false", "pneumonia": "", "nodule": "true", "effusion": "false"}
    second = {r["class"]: r["present"] for r in series if r["record_id"] == corr.id}
    assert second == {"normal": "", "pneumonia": "", "nodule": "true", "effusion": "true"}
    row = next(r for r in series if r["record_id"] == corr.id)
    assert (row["tag"], row["source"], row["source_kind"], row["parent_id"]) == (
        "corrected", "reader1", "person", pred.id)
    assert row["time"] == corr.created_at
    pred_row = next(r for r in series if r["record_id"] == pred.id)
    assert (pred_row["source"], pred_row["source_version"]) == ("chest-cls", "1.2")
    slices = [(r["slice"], r["class"], r["present"]) for r in rows if r["slice"]]
    assert slices == [("3", "effusion", "false"), ("12", "nodule", "true")]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_json_export_round_trips_the_payloads(tmp_path, store_with_cases):
    store, image_hash, pred, corr = store_with_cases
    out = export_case_labels(store.records(kind="case"), tmp_path / "cases.json")
    doc = json.loads(out.read_text())
    assert doc["format"] == "medviewer-case-labels"
    assert [r["id"] for r in doc["records"]] == [pred.id, corr.id]
    assert doc["records"][0]["labels"] == pred.payload
    assert doc["records"][1]["parent_id"] == pred.id
    assert doc["records"][0]["source"] == {"kind": "model", "name": "chest-cls",
                                           "version": "1.2"}


def test_export_replaces_atomically_and_refuses_bad_requests(tmp_path, store_with_cases):
    store, image_hash, pred, corr = store_with_cases
    target = tmp_path / "cases.csv"
    target.write_text("old content\n")
    export_case_labels([pred], target)
    assert target.read_text().startswith("record_id,")
    assert len(target.read_text().splitlines()) == 1 + len(CLASSES) + 2
    with pytest.raises(ValueError, match=".csv or .json"):
        export_case_labels([pred], tmp_path / "cases.txt")
    seg, affine = real_seg()
    lm = store.add_labelmap(image_hash, seg, affine, {}, "final", Source("person", "r"))
    for name in ("bad.csv", "bad.json"):
        with pytest.raises(ValueError, match="not case labels"):
            export_case_labels([pred, lm], tmp_path / name)
        assert not (tmp_path / name).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_payload_shapes_are_read_leniently():
    names, series, slices = case_findings({"nodule": True, "normal": None})
    assert names == ["nodule", "normal"] and series == {"nodule": True, "normal": None}
    names, series, slices = case_findings(
        {"classes": {"names": ["a", "b"]}, "series": [{"name": "b", "present": True}],
         "slices": {"4": [{"name": "a", "present": False}]}})
    assert names == ["a", "b"] and series == {"b": True} and slices == {4: {"a": False}}
