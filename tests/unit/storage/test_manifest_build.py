"""build_manifest: the right records, slices, classes, frozen splits, files and skip reasons."""
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _storage_data import DATA, EXAMPLE_CT, TOTALSEG

from medviewer.core.geometry import Geometry
from medviewer.core.hashing import image_hash
from medviewer.core.manifest import Manifest, sha256_file, split_unit
from medviewer.core.volume import Volume
from medviewer.io.volume_files import read_volume_file
from medviewer.storage.manifest_build import build_manifest
from medviewer.storage.store import Effort, LabelStore, Source

SEG_LABELS = ["background", "liver", "spleen", "kidney_right", "kidney_left", "stomach"]
TS_TO_MODEL = {5: 1, 1: 2, 2: 3, 3: 4, 6: 5}  # TotalSegmentator values -> model values
TABLE = {"labels": [{"value": i, "name": n} for i, n in enumerate(SEG_LABELS) if i]}
CT_V1 = Source("model", "ct-abdomen-organs", "1.0.0")
CT_V2 = Source("model", "ct-abdomen-organs", "1.1.0")
READER = Source("person", "reader")
PNEUMONIA = DATA / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz"
CLS = Source("model", "pneumonia-cxr", "1.0.0")


def _mapped(name):
    raw = np.ascontiguousarray(np.asarray(nib.load(str(TOTALSEG / name)).dataobj).T)
    out = np.zeros(raw.shape, np.uint8)
    for src, dst in TS_TO_MODEL.items():
        out[raw == src] = dst
    return out


@pytest.fixture(scope="module")
def ct():
    vol = read_volume_file(EXAMPLE_CT)
    return vol, image_hash(vol), _mapped("example_seg.nii.gz"), _mapped("example_seg_fast.nii.gz")


def test_segmentation_manifest_from_a_correction_chain(tmp_path, ct):
    vol, h, pred, fast = ct
    aff = vol.geometry.affine_ras()
    with LabelStore(tmp_path / "ws") as store:
        store.add_image(vol, h)
        p = store.add_labelmap(h, pred, aff, TABLE, "predicted", CT_V1,
                               extra={"case_uncertainty": 0.2})
        first = pred.copy()
        first[[3, 4, 20]] = fast[[3, 4, 20]]  # the reader fixes three slices, saves
        c1 = store.add_labelmap(h, first, aff, TABLE, "corrected", READER, parent_id=p.id,
                                effort=Effort(30, 4, 100))
        second = first.copy()
        second[11] = fast[11]  # ... then one more, saves again
        c2 = store.add_labelmap(h, second, aff, TABLE, "corrected", READER, parent_id=c1.id)
        changed = sorted({z for z in (3, 4, 20, 11) if not np.array_equal(fast[z], pred[z])})
        assert len(changed) >= 3  # the two reference segmentations differ on real slices
        m, reasons = build_manifest(store, "ct-abdomen-organs:1.0.0", "segmentation",
                                    SEG_LABELS, dims=2)
        assert reasons == []
        assert m.model == "ct-abdomen-organs" and m.task == "segmentation"
        assert sorted(z for e in m.entries for z in e.target["slices"]) == changed
        for e in m.entries:  # one entry per slab of 8 slices, split frozen in the store
            assert {split_unit(h, z) for z in e.target["slices"]} == {e.unit}
            assert store.split_of("ct-abdomen-organs", e.unit) == e.split
            assert (e.record_id, e.parent_record_id, e.tag) == (c2.id, c1.id, "corrected")
            assert e.predicted_by == "ct-abdomen-organs:1.0.0"
            assert e.target["label_values"] == {n: i for i, n in enumerate(SEG_LABELS) if i}
            assert e.image == f"images/{h}.nii.gz" and e.target["labels"] == c2.file
            assert e.image_meta == {"modality": "CT", "invert": False,
                                    "shape": [30, 101, 122], "dtype": "int16"}
        # written under <workspace>/training/<model>/, root = the workspace, files verify
        path = tmp_path / "ws" / "training" / "ct-abdomen-organs" / f"manifest-{m.sha256[:12]}.json"
        assert path.is_file() and m.root_dir == (tmp_path / "ws").resolve()
        assert json.loads(path.read_text())["root"] == "../.."
        assert Manifest.load(path) == m
        m.verify()
        assert m.entries[0].image_sha256 == sha256_file(store.image_file(h))
        # a 3D model: one unit per image, all changed slices in one entry
        m3, _ = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, dims=3,
                               out_dir=tmp_path / "elsewhere")
        assert [(e.unit, e.target["slices"]) for e in m3.entries] == [(h, changed)]
        assert Manifest.load(tmp_path / "elsewhere" /
                             f"manifest-{m3.sha256[:12]}.json").root_dir == m.root_dir


def test_segmentation_record_choice_final_reviewed_and_skips(tmp_path, ct):
    vol, h, pred, fast = ct
    aff = vol.geometry.affine_ras()
    ws = tmp_path / "ws"
    with LabelStore(ws) as store:
        store.add_image(vol, h)
        p1 = store.add_labelmap(h, pred, aff, TABLE, "predicted", CT_V1)
        store.add_labelmap(h, fast, aff, TABLE, "corrected", READER, parent_id=p1.id)
        # a newer prediction by v2, reviewed: slices 5..7 as listed, none changed
        p2 = store.add_labelmap(h, pred, aff, TABLE, "predicted", CT_V2)
        c = store.add_labelmap(h, pred, aff, TABLE, "corrected", READER, parent_id=p2.id,
                               extra={"reviewed_slices": [5, 6, 7]})
        # another model's prediction and correction on the same image are not ours
        other = store.add_labelmap(h, pred, aff, TABLE, "predicted", Source("model", "x", "1"))
        store.add_labelmap(h, fast, aff, TABLE, "corrected", READER, parent_id=other.id)
        m, reasons = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, 2)
        assert [(e.record_id, e.target["slices"], e.predicted_by) for e in m.entries] == [
            (c.id, [5, 6, 7], "ct-abdomen-organs:1.1.0")]
        # a person's final label map on a second image (only two of its names are ours),
        # whose snapshot was never stored
        table2 = {"labels": [{"value": 5, "name": "Liver"}, {"value": 1, "name": "spleen"},
                             {"value": 9, "name": "bladder"}]}
        raw = np.ascontiguousarray(np.asarray(nib.load(str(TOTALSEG / "example_seg.nii.gz"))
                                              .dataobj).T).astype(np.uint8)
        vol2 = Volume(vol.array[::-1].copy(), vol.geometry, modality="CT")
        h2 = image_hash(vol2)
        f2 = store.add_labelmap(h2, raw[::-1].copy(), aff, table2, "final", READER)
        m, reasons = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, 2)
        assert len(reasons) == 1 and "image snapshot missing" in reasons[0] and \
            f2.id[:8] in reasons[0]
        store.add_image(vol2, h2)
        m, reasons = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, 2)
        assert reasons == []
        final = [e for e in m.entries if e.image_hash == h2]
        assert sorted(z for e in final for z in e.target["slices"]) == list(range(30))
        assert all(e.target["label_values"] == {"liver": 5, "spleen": 1} and
                   e.predicted_by is None and e.tag == "final" for e in final)
        assert {e.split for e in m.entries} == {"train", "val"}
        # the splits stay frozen when the manifest is rebuilt with another fraction
        again, _ = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, 2,
                                  val_fraction=0.9)
        assert [(e.unit, e.split) for e in again.entries] == [(e.unit, e.split)
                                                              for e in m.entries]


def _xray(index, split="val"):
    with np.load(PNEUMONIA) as d:
        img = np.array(d[f"{split}_images"][index])
        label = int(d[f"{split}_labels"][index, 0])
    vol = Volume(img[None], Geometry(shape=(1, 28, 28), spacing=(1.0, 1.0, 1.0)),
                 modality="DX")
    return vol, ("normal", "pneumonia")[label]


def _predict(store, vol, label, probs):
    h = store.add_image(vol)
    payload = {"classes": ["normal", "pneumonia"], "series": {label: True}, "slices": {},
               "prediction": {"model": "pneumonia-cxr:1.0.0", "label": label,
                              "probabilities": probs, "slice": 0, "case_uncertainty": 0.5}}
    return h, store.add_case_labels(h, payload, "predicted", CLS)


def test_classification_accept_reject_change_and_reasons(tmp_path):
    labels = ["normal", "pneumonia"]
    with LabelStore(tmp_path) as store:
        got = {}
        for i, decision in enumerate(["accept", "reject", "change", "other", "open",
                                      "person", "multi"]):
            vol, truth = _xray(i)
            wrong = labels[1 - labels.index(truth)]
            if decision == "person":
                h = store.add_image(vol)
                payload = {"classes": ["normal", "pneumonia", "nodule"],
                           "series": {truth: True, "nodule": False}, "slices": {}}
                rec = store.add_case_labels(h, payload, "final", READER)
                got[decision] = (rec, truth)
                continue
            h, p = _predict(store, vol, truth if decision == "accept" else wrong,
                            {truth: 0.6, wrong: 0.4})
            states = {"accept": ({truth: True}, "final"), "reject": ({wrong: False}, "corrected"),
                      "change": ({truth: True, wrong: False}, "corrected"),
                      "other": ({"nodule": True}, "corrected"),
                      "multi": ({"normal": True, "pneumonia": True}, "corrected")}
            if decision in states:
                s, tag = states[decision]
                payload = {"classes": labels, "series": s, "slices": {}}
                got[decision] = (store.add_case_labels(h, payload, tag, READER,
                                                       parent_id=p.id), truth)
        m, reasons = build_manifest(store, "pneumonia-cxr", "classification", labels, dims=2)
        by_record = {e.record_id: e for e in m.entries}
        for decision in ("accept", "reject", "change", "person"):
            rec, truth = got[decision]
            e = by_record[rec.id]
            assert e.target == {"class": truth, "slice": 0} and e.unit == e.image_hash
            assert e.tag == rec.tag
        assert len(m.entries) == 4  # the open prediction is not a training case
        assert by_record[got["person"][0].id].predicted_by is None
        assert by_record[got["reject"][0].id].predicted_by == "pneumonia-cxr:1.0.0"
        assert len(reasons) == 2
        assert any("'nodule' is not one of the model's labels" in r for r in reasons)
        assert any("several of the model's classes" in r for r in reasons)
        m.verify()
        # a three-class model cannot turn a rejection into a class
        m3, reasons3 = build_manifest(store, "pneumonia-cxr", "classification",
                                      labels + ["covid"], dims=2)
        assert got["reject"][0].id not in {e.record_id for e in m3.entries}
        assert any("rejection without a replacement" in r for r in reasons3)
        with pytest.raises(ValueError):
            build_manifest(store, "pneumonia-cxr", "detection", labels, dims=2)


def test_real_scripted_seg_correction_builds_a_manifest(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from learn_fixtures import ABOVE_Z, manifest_for, reference_labels, seg_case

    from medviewer.ai.registry import ModelRegistry
    from medviewer.core.val_check import check_validation_set, manifest_unit_classes

    with LabelStore(tmp_path) as store:
        case = seg_case(store, n_slices=20, seed=0)
        below = [z for z in case["slices"] if z < 82]  # never trained on by the starter
        assert len(below) == 20 and sorted(set(case["slices"]) - set(below)) == ABOVE_Z
        m, reasons = manifest_for(store, case)
        # the reader covered the frozen validation set up to the minimum
        assert check_validation_set(manifest_unit_classes(m), case["labels"][1:])["ok"]
        assert reasons == []
        assert sorted(z for e in m.entries for z in e.target["slices"]) == case["slices"]
        assert sorted(z for e in m.val_entries() for z in e.target["slices"]) == \
            case["val_slices"]
        ref = reference_labels(ModelRegistry().get(case["base"]))
        labels = store.load_labels(case["corrected_id"])
        for e in m.entries:
            assert e.predicted_by == "ct-abdomen-organs:1.0.0" and e.tag == "corrected"
            for z in e.target["slices"]:
                assert np.array_equal(labels[z], ref[z])
        # both sides hold slices with organs (the reader saw to it), and they are disjoint
        assert any(ref[z].any() for z in case["val_slices"])
        assert any(ref[z].any() for z in case["train_slices"])
        assert not {e.unit for e in m.train_entries()} & {e.unit for e in m.val_entries()}
        m.verify()


def test_a_models_own_output_never_enters_the_manifest(tmp_path, ct):
    """Accepting a prediction unchanged as 'final' gives nothing to train or validate on; a
    'final' record with one slice fixed gives that slice only (not the 29 predicted ones); a
    record the model itself tagged 'corrected' is not a person's; each target lists the
    classes in its slices."""
    vol, h, pred, fast = ct
    aff = vol.geometry.affine_ras()
    with LabelStore(tmp_path / "ws") as store:
        store.add_image(vol, h)
        p = store.add_labelmap(h, pred, aff, TABLE, "predicted", CT_V1)
        accepted = store.add_labelmap(h, pred, aff, TABLE, "final", READER, parent_id=p.id)
        m, reasons = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, 2)
        assert m.entries == []
        assert len(reasons) == 1 and accepted.id[:8] in reasons[0]
        assert "not ground truth" in reasons[0]
        # the model writing a 'corrected' record of its own output is not a person confirming it
        store.add_labelmap(h, fast, aff, TABLE, "corrected", CT_V2, parent_id=p.id)
        m, _ = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, 2)
        assert m.entries == []
        z = next(z for z in range(pred.shape[0]) if not np.array_equal(fast[z], pred[z]))
        fixed = pred.copy()
        fixed[z] = fast[z]
        final = store.add_labelmap(h, fixed, aff, TABLE, "final", READER, parent_id=accepted.id)
        m, reasons = build_manifest(store, "ct-abdomen-organs", "segmentation", SEG_LABELS, 2)
        assert reasons == []
        assert [(e.record_id, e.tag, e.target["slices"]) for e in m.entries] == [
            (final.id, "final", [z])]
        present = {SEG_LABELS[v] for v in np.unique(fast[z]) if v}
        assert m.entries[0].target["classes"] == sorted(present) and present
        m.verify()
