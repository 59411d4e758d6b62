"""Fine-tuning the promptable model from prompt records (real CT slices + TotalSegmentator
masks stored through the real label store; a tiny model trained for a few steps): the frozen
validation split, the trainer's interactive branch (click-protocol gate, card, version) and a
gate that refuses a candidate trained on wrong masks."""
import io
import json

import numpy as np
import pytest
from _interactive_models import (CT, NAME, SEG, body_cases, body_masks, read_zyx,
                                 store_ct_records, write_tiny_model)

from medviewer.core.prompt_set import PromptSet, prompt_unit
from medviewer.services.finetune import build_training_set, trainer_parser, validation_check
from medviewer.services.models import ModelCatalog
from medviewer.storage.store import LabelStore

LIVER = 5


def _run(args):
    from medviewer.ai.training.run import run

    out = io.StringIO()
    code = run(trainer_parser("t").parse_args(args), stream=out)
    events = [json.loads(x) for x in out.getvalue().splitlines() if x.strip()]
    return code, events


def _args(pset, models, *extra):
    return ["--manifest", str(pset.path), "--base", NAME, "--models-dir", str(models),
            "--replay", "none", "--threads", "1", "--max-clicks", "8", *extra]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    write_tiny_model(root, "1.0.0", steps=0)  # untrained: these tests check the mechanism
    return root


def test_frozen_validation_set_is_kept_when_records_are_added(tmp_path, models):
    card = ModelCatalog(user_dir=models).get(NAME)
    with LabelStore(tmp_path / "ws") as store:
        store_ct_records(store, [3, 11, 19, 27], LIVER)
        first, skipped = build_training_set(store, card)
        assert skipped == [] and isinstance(first, PromptSet)
        val1 = {r["id"] for r in first.val_entries()}
        assert val1 and first.train_entries()  # at least one frozen validation record
        assert validation_check(first, card)["ok"]
        store_ct_records(store, [7, 15, 23], 1)  # more records, some in the same slabs
        second, _ = build_training_set(store, card)
    again = PromptSet.load(second.path)
    assert {r["id"] for r in again.val_entries()} >= val1  # frozen: still validation
    assert len(again.records) == 7
    # the arrays are the real slices and masks
    r = again.records[0]
    z = r["slice"]
    assert np.array_equal(again.mask(r["id"]), read_zyx(SEG)[z] == LIVER)
    assert np.array_equal(again.image(r["id"]), read_zyx(CT)[z].astype(np.float32))
    assert r["spacing"] == [3.0, 3.0] and r["unit"] == prompt_unit(r["image_hash"], "axial", z)


def test_too_few_records_are_refused_with_the_reason(tmp_path, models):
    card = ModelCatalog(user_dir=models).get(NAME)
    with LabelStore(tmp_path / "ws") as store:
        store_ct_records(store, [11], LIVER)
        pset, _ = build_training_set(store, card)
    check = validation_check(pset, card)
    assert not check["ok"] and "too few prompt records" in check["message"]
    code, events = _run(_args(pset, models))
    assert code == 2 and events[-1]["kind"] == "validation_too_small"
    assert "at least 1" in events[-1]["message"] or "no training record" in events[-1]["message"]
    assert [c.version for c in ModelCatalog(user_dir=models).list()
            if c.name == NAME] == ["1.0.0"]  # nothing written


def test_a_label_manifest_is_not_a_prompt_set(tmp_path, models):
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"model": NAME, "entries": []}))
    code, events = _run(["--manifest", str(bad), "--base", NAME, "--models-dir", str(models)])
    assert code == 2 and "prompt records" in events[-1]["message"]


@pytest.mark.slow
def test_fine_tune_writes_a_gated_version_and_keeps_the_frozen_split(tmp_path, models):
    card = ModelCatalog(user_dir=models).get(NAME)
    with LabelStore(tmp_path / "ws") as store:
        store_ct_records(store, [3, 11, 19, 27], LIVER)
        first, _ = build_training_set(store, card)
        code, events = _run(_args(first, models, "--steps", "4", "--no-promote"))
        assert code == 0, events[-1]
        store_ct_records(store, [6, 14], 1)
        second, _ = build_training_set(store, card)
        code2, events2 = _run(_args(second, models, "--steps", "3", "--no-promote"))
    assert code2 == 0, events2[-1]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "baseline" in kinds and "progress" in kinds
    gate = next(e for e in events if e["event"] == "gate")
    assert gate["metric"] == "mean_noc85" and gate["lower_is_better"] is True
    assert gate["active"]["n"] == len(first.val_entries())
    done = events[-1]
    assert done["event"] == "done" and done["promoted"] is False
    cat = ModelCatalog(user_dir=models)
    new = cat.get(f"{NAME}:{done['version']}")
    assert new.parent_version == "1.0.0" and new.task == "interactive"
    t = new.training
    assert t["gate"]["passed"] == gate["passed"] and t["gate"]["margin"] == 0.5
    assert t["records"]["val"] == [r["id"] for r in first.val_entries()]
    assert sorted(t["records"]["train"]) == sorted(r["id"] for r in first.train_entries())
    assert new.metrics["mean_noc85"] == gate["candidate"]["value"]
    assert t["baseline"]["value"] == gate["active"]["value"]
    # the second run: another version (never overwritten), same frozen validation records
    v2 = events2[-1]["version"]
    assert v2 != done["version"]
    t2 = cat.reload().get(f"{NAME}:{v2}").training
    assert set(t2["records"]["val"]) >= set(t["records"]["val"])
    assert cat.active_version(NAME) in (None, "1.0.0")  # --no-promote


@pytest.mark.slow
def test_gate_refuses_a_candidate_trained_on_wrong_masks(tmp_path):
    """A parent that learned to outline the body on this CT (a few clicks: NoC@85 4);
    a candidate fine-tuned on records whose accepted masks are wrong (the air around the
    body). Measured on the true validation masks the candidate needs more clicks, and the
    gate (margin 0.5 clicks) does not promote it."""
    from medviewer.io.volume_files import read_volume_file
    from medviewer.services.prompt_records import store_prompt_record

    models = tmp_path / "models"
    write_tiny_model(models, "1.0.0", steps=60, lr=2e-3, cases=body_cases())
    ModelCatalog(user_dir=models).promote(NAME, "1.0.0", reason="the parent is active")
    card = ModelCatalog(user_dir=models).get(NAME)
    vol = read_volume_file(CT)
    body = body_masks()
    ids = {}
    with LabelStore(tmp_path / "ws") as store:
        for z, mask in ((12, body[12]), (20, body[20]), (0, ~body[0]), (4, ~body[4]),
                        (25, ~body[25]), (29, ~body[29])):
            ys, xs = np.nonzero(mask)
            rec = {"engine": "learned", "plane": "axial", "slice": z,
                   "prompts": {"points": [[z, int(ys[len(ys) // 2]), int(xs[len(xs) // 2]),
                                           True]], "boxes": [], "scribbles": []}}
            ids[z] = store_prompt_record(store, None, rec, mask, volume=vol)
        h = store.prompt_record(ids[12]).image_hash
        for z in (12, 20):  # slabs 1 and 2: the true masks are the validation set
            store.mark_validation(NAME, prompt_unit(h, "axial", z))
        pset, _ = build_training_set(store, card)
    assert {r["id"] for r in pset.val_entries()} == {ids[12], ids[20]}
    assert {r["id"] for r in pset.train_entries()} == {ids[z] for z in (0, 4, 25, 29)}
    code, events = _run(["--manifest", str(pset.path), "--base", NAME, "--models-dir",
                         str(models), "--replay", "none", "--threads", "1", "--max-clicks",
                         "10", "--steps", "30", "--lr", "2e-3"])
    assert code == 0, events[-1]
    gate = next(e for e in events if e["event"] == "gate")
    a, c = gate["active"]["value"], gate["candidate"]["value"]
    assert a <= 5 and c > a + 0.5, (a, c)  # measured 4 and 10
    assert gate["passed"] is False and "fails" in gate["reason"]
    assert events[-1]["promoted"] is False
    cat = ModelCatalog(user_dir=models)
    assert cat.get(NAME).version == "1.0.0"  # the parent stays active
    assert cat.get(f"{NAME}:{events[-1]['version']}").training["gate"]["passed"] is False


def test_replay_mixes_both_samplers_in_each_batch():
    from medviewer.ai.interactive.train_data import MixedSampler, Sampler

    from _interactive_models import ct_cases

    records, replay = Sampler(ct_cases((5,)), seed=0), Sampler(body_cases(), seed=1)
    drawn = {"records": 0, "replay": 0}

    def counting(sampler, key):
        real = sampler.sample

        def sample():
            drawn[key] += 1
            return real()
        sampler.sample = sample

    counting(records, "records")
    counting(replay, "replay")
    x, y = MixedSampler(records, replay, 0.5, seed=0).batch(40)
    from medviewer.ai.interactive.encoding import CHANNELS

    assert x.shape == (40, len(CHANNELS), 128, 128) and y.shape == (40, 1, 128, 128)
    assert drawn["records"] + drawn["replay"] == 40
    assert 10 <= drawn["replay"] <= 30  # about half from the replayed data
    drawn.update(records=0, replay=0)
    MixedSampler(records, replay, 0.0, seed=0).batch(8)
    assert drawn == {"records": 8, "replay": 0}
    with pytest.raises(ValueError, match="replay fraction"):
        MixedSampler(records, replay, 1.0)


def test_using_model_measures_another_network_and_restores_the_loaded_one(models):
    from medviewer.ai.interactive import learned
    from medviewer.ai.interactive.train import build_model

    card = ModelCatalog(user_dir=models).get(NAME)
    a, b = build_model().eval(), build_model().eval()
    learned.set_model(a, card)
    try:
        with learned.using_model(b):
            assert learned.load() is b
        assert learned.load() is a and learned.current_ref() == card.ref
    finally:
        learned.set_model(None)


def test_promoting_a_version_makes_the_prompt_engine_load_the_active_one(models, monkeypatch):
    from medviewer.ai.interactive import learned
    from medviewer.ai.interactive.train import build_model

    monkeypatch.setenv("MEDVIEWER_MODELS", str(models))
    learned.set_model(None)
    try:
        first = learned.load()  # loaded on its own: the active version
        assert learned.current_ref() == f"{NAME}:1.0.0"
        ModelCatalog(user_dir=models).promote(NAME, "1.0.0", reason="test")
        second = learned.load()
        assert second is not first  # re-read from the model folder after the change
        chosen = build_model().eval()
        learned.set_model(chosen)  # a version picked explicitly stays picked
        ModelCatalog(user_dir=models).promote(NAME, "1.0.0", reason="test")
        assert learned.load() is chosen
    finally:
        learned.set_model(None)
