"""Inference near the hardware's limit: precision choice per model and machine, the fewest
windows a card allows, the uncertainty score streamed per batch, on the real chest CT."""
import json
import shutil
import tracemalloc

import numpy as np
import pytest
import torch

from medviewer.ai import precision
from medviewer.ai.cards import ModelCard
from medviewer.ai.device import autocast
from medviewer.ai.inference import segment
from medviewer.ai.registry import ModelRegistry, load_model
from medviewer.ai.uncertainty import StreamingScore, case_score, most_uncertain_slice
from medviewer.core.foreground import mask_to_foreground
from medviewer.jobs import drive


@pytest.fixture(scope="module")
def organs():
    card = ModelRegistry().get("ct-abdomen-organs:1.0.0")
    return card, load_model(card)


def _card_copy(card, tmp_path, record=None):
    folder = tmp_path / card.name / card.version
    shutil.copytree(card.folder, folder)
    (folder / precision.RECORD_FILE).unlink(missing_ok=True)
    if record is not None:
        (folder / precision.RECORD_FILE).write_text(json.dumps(record))
    return ModelCard.load(folder)


def test_cpu_precision_needs_a_passed_record_for_these_weights(organs, tmp_path, monkeypatch):
    card, _ = organs
    monkeypatch.delenv("MEDVIEWER_PRECISION", raising=False)
    bare = _card_copy(card, tmp_path / "a")
    assert precision.choose(bare, "cpu") == "fp32"  # never checked: full precision
    ok = {"bf16_ok": True, "agreement": 0.9995, "weights_sha256": card.weights["sha256"]}
    good = _card_copy(card, tmp_path / "b", ok)
    assert precision.choose(good, "cpu") == ("bf16" if precision.cpu_native_bf16() else "fp32")
    assert precision.choose(good, "cpu", "fp32") == "fp32"  # --fp32 / the app's setting
    monkeypatch.setenv("MEDVIEWER_PRECISION", "fp32")
    assert precision.choose(good, "cpu") == "fp32"
    monkeypatch.delenv("MEDVIEWER_PRECISION")
    other = _card_copy(card, tmp_path / "c", dict(ok, weights_sha256="1" * 64))
    assert precision.choose(other, "cpu") == "fp32"  # a record of other weights counts for nothing
    failed = _card_copy(card, tmp_path / "d", dict(ok, bf16_ok=False))
    assert precision.choose(failed, "cpu") == "fp32"
    with pytest.raises(ValueError, match="unknown precision"):
        precision.choose(good, "cpu", "int8")


def test_autocast_bf16_on_the_cpu_only_when_asked():
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 1, 8, 8)
    with torch.inference_mode():
        with autocast("cpu", "bf16"):
            assert conv(x).dtype == torch.bfloat16
        with autocast("cpu", "fp32"):
            assert conv(x).dtype == torch.float32
        with autocast("cpu"):
            assert conv(x).dtype == torch.float32


def test_shipped_record_holds_for_the_ct_model_on_the_chest_ct(organs, ct):
    """The record beside ct-abdomen-organs 1.0.0 is what the chest CT gives now, and bf16 is
    allowed only when its labels agree with fp32 on >= 99.9 % of the voxels."""
    card, model = organs
    vol, spacing = ct
    rec = precision.read_record(card)
    assert rec is not None, "ct-abdomen-organs ships no precision record for its weights"
    z = slice(40, 52)  # a slab: the full check (all 100 slices) is the slow test below

    def run(p):
        return drive(segment(model, card, vol.array[z], spacing, want_entropy=False,
                             precision=p)).labels

    res = precision.compare(run, "chest CT slab")
    assert rec["bf16_ok"] == (rec["agreement"] >= precision.MIN_AGREEMENT
                              and rec["speedup"] >= precision.MIN_SPEEDUP)
    if not rec["bf16_ok"]:
        assert precision.choose(card, "cpu") == "fp32"
    # the slab is a part of the recorded volume: the same side of the threshold or close
    assert abs(res["agreement"] - rec["agreement"]) < 0.003


def _recorder(model, calls):
    class Recorder(torch.nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return model(x)

    return Recorder()


def test_one_whole_slice_window_when_the_card_allows_it(organs, ct):
    card, model = organs
    vol, spacing = ct
    arr = vol.array[50:52]
    calls = []
    drive(segment(_recorder(model, calls), card, arr, spacing, batch_size=2))
    assert sum(c[0] for c in calls) == 8 and calls[0][-2:] == (160, 160)  # 2x2 per slice
    whole = card.to_dict()
    whole["input"] = dict(whole["input"], max_patch=[256, 256])
    calls.clear()
    drive(segment(_recorder(model, calls), whole, arr, spacing, batch_size=2))
    assert calls == [(2, 1, 240, 240)]  # one window: the slice rounded up to 16
    small = dict(whole, input=dict(whole["input"], max_patch=[224, 224]))
    calls.clear()
    drive(segment(_recorder(model, calls), small, arr, spacing, batch_size=2))
    assert sum(c[0] for c in calls) == 8  # the slice does not fit the allowed size


def _random_case(seed):
    rng = np.random.default_rng(seed)
    ent = rng.random((9, 40, 50)).astype(np.float16)
    labels = np.zeros((9, 40, 50), np.uint8)
    labels[3:6, 10:20, 15:30] = 2
    labels[7, 30:33, 5:8] = 1
    return ent, labels


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_streaming_score_equals_the_whole_volume_score(batch):
    for seed in range(3):
        ent, labels = _random_case(seed)
        s = StreamingScore((0, 9))
        for a in range(0, 9, batch):
            s.add(a, ent[a:a + batch].copy(), labels[a:a + batch])
        score, most = s.finish()
        assert score == pytest.approx(case_score(ent, labels), rel=1e-5)
        assert most == most_uncertain_slice(ent, axis=0)
    empty = StreamingScore((0, 9))
    empty.add(0, ent, np.zeros_like(labels))
    assert empty.finish()[0] == pytest.approx(float(ent.astype(np.float32).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="in order"):
        StreamingScore((0, 9)).add(2, ent[:1], labels[:1])


def test_the_score_streams_without_whole_volume_float_arrays(organs, ct):
    """No entropy volume and no float copy of it: numpy's allocations during the run (batch
    temporaries) stay below one float16 volume of the slices; the score equals the old way's."""
    card, model = organs
    vol, spacing = ct
    arr = np.ascontiguousarray(vol.array[30:70])
    one_float16_volume = arr.size * 2

    def body_only(z, e):
        mask_to_foreground(e[None], arr[z:z + 1])

    scorer = StreamingScore((0, arr.shape[0]), mask=body_only)
    tracemalloc.start()
    try:
        res = drive(segment(model, card, arr, spacing, want_entropy=False,
                            entropy_sink=scorer.add, batch_size=4))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.entropy is None
    assert peak < one_float16_volume, f"numpy peaked at {peak} bytes"
    score, most = scorer.finish()
    full = drive(segment(model, card, arr, spacing, want_entropy=True, batch_size=4))
    ent = mask_to_foreground(full.entropy, arr)
    assert np.array_equal(full.labels, res.labels)
    assert score == pytest.approx(case_score(ent, full.labels), rel=1e-4)
    assert most == most_uncertain_slice(ent, axis=0)
