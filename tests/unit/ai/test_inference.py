"""Inference generators on the real chest CT and PneumoniaMNIST: shapes, slice mode, cancel, cache."""
import gc
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai.architectures import build
from medviewer.ai.cards import ModelCard
from medviewer.ai.device import (DeviceError, autocast, choose_device, configure_threads,
                                 device_label, worker_threads)
from medviewer.ai.inference import Cancelled, ModelCache, Step, classify, cpu_lanes, segment
from medviewer.jobs import drive
from medviewer.ai.registry import ModelRegistry, load_model
from medviewer.ai.uncertainty import entropy
from medviewer.jobs.progress import CancelToken, Cancelled as JobCancelled, Reporter

LABELS = ["background", "soft tissue", "bone"]


def seg_card(dims, spacing, patch, name="tiny-seg"):
    arch = {"name": "monai_unet", "params": {"spatial_dims": dims, "out_channels": 3,
                                             "channels": [4, 8, 16], "strides": [2, 2],
                                             "num_res_units": 0}}
    return ModelCard.from_dict({
        "name": name, "version": "0.1.0", "task": "segmentation", "labels": LABELS,
        "input": {"dims": dims, "channels": 1, "spacing": spacing, "patch": patch,
                  "intensity": {"type": "ct_window", "center": 40, "width": 400}},
        "architecture": arch, "weights": {"file": "weights.safetensors", "sha256": "0" * 64}})


def tiny_net(card, seed=0):
    torch.manual_seed(seed)
    return build(card.architecture["name"], card.architecture["params"]).eval()


@pytest.fixture(scope="module")
def card2d():
    return seg_card(2, [2.0, 2.0], [240, 240])


@pytest.fixture(scope="module")
def whole_2d(ct, card2d):
    vol, sp = ct
    steps = []
    gen = segment(tiny_net(card2d), card2d, vol.array, sp, "cpu", want_probs=True)
    result = drive(gen, lambda *s: steps.append(Step(*s)))
    return result, steps


def test_whole_volume_2d_segmentation_is_on_the_volume_grid(ct, whole_2d):
    vol, _ = ct
    res, steps = whole_2d
    assert res.labels.shape == vol.shape == (100, 512, 512) and res.labels.dtype == np.uint8
    assert res.probs.shape == (3, 100, 512, 512) and res.probs.dtype == np.float16
    np.testing.assert_allclose(res.probs[:, ::17, ::31, ::31].astype(np.float32).sum(0), 1.0,
                               atol=5e-3)
    assert (res.labels[::9] == res.probs[:, ::9].argmax(0)).mean() > 0.99  # float16 rounding (near-ties)
    assert res.z_range == (0, 100) and res.label_names == LABELS
    assert res.preprocessing["model_shape"] == [100, 230, 230]
    assert steps[-1].done == steps[-1].total == 100
    # the entropy map (from the model grid, resampled) matches the entropy of the volume-grid
    # probabilities: equal inside regions, close at their edges
    ent = entropy(res.probs[:, ::9].astype(np.float32))
    assert res.entropy.shape == (100, 512, 512) and res.entropy.dtype == np.float16
    diff = np.abs(res.entropy[::9].astype(np.float32) - ent)
    assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.1
    done = [s.done for s in steps]
    lanes = cpu_lanes(torch.get_num_threads(), 100)
    # the CPU path times one slice first in each lane (slices handed over in order)...
    assert done[0] == 0 and 1 <= done[1] <= lanes
    assert all(0 < b - a <= 16 * lanes for a, b in zip(done, done[1:]))  # ...then small batches


def test_slice_mode_touches_only_that_slice(ct, card2d, whole_2d):
    vol, sp = ct
    whole, _ = whole_2d
    k = 57
    res = drive(segment(tiny_net(card2d), card2d, vol.array, sp, "cpu", slice_index=k,
                        want_probs=True))
    assert res.z_range == (k, k + 1) and res.probs.shape == (3, 1, 512, 512)
    others = np.delete(np.arange(100), k)
    assert not res.labels[others].any()
    assert res.labels[k].any() or whole.labels[k].any() is False
    # the same slice as in the whole-volume run (batch composition does not matter)
    assert (res.labels[k] == whole.labels[k]).mean() > 0.999
    np.testing.assert_allclose(res.probs[:, 0].astype(np.float32),
                               whole.probs[:, k].astype(np.float32), atol=2e-3)


def test_3d_model_sliding_window_on_a_ct_slab(ct):
    vol, sp = ct
    card = seg_card(3, [5.0, 3.0, 3.0], [16, 64, 64])
    net = tiny_net(card)
    forwards = []
    net.register_forward_hook(lambda *a: forwards.append(1))
    slab = vol.array[20:52, 100:400, 100:400]  # a real CT block (mediastinum and lungs)
    res = drive(segment(net, card, slab, sp, "cpu", want_probs=True))
    assert res.labels.shape == slab.shape and res.probs.shape == (3,) + slab.shape
    assert res.preprocessing["model_shape"] == [16, 90, 90]
    assert len(forwards) >= 4  # several sliding windows
    one = drive(segment(net, card, slab, sp, "cpu", slice_index=13))
    assert not np.delete(one.labels, 13, axis=0).any()
    assert (one.labels[13] == res.labels[13]).mean() > 0.99


def test_cancel_after_the_first_batch_stops_the_generator(ct, card2d):
    vol, sp = ct
    net = tiny_net(card2d)
    forwards = []
    net.register_forward_hook(lambda *a: forwards.append(1))
    token = CancelToken()
    steps = []

    def progress(done, total, message):
        steps.append(done)
        if done > 0:
            token.cancel()  # the user presses Cancel after the first batch

    t0 = time.monotonic()
    with pytest.raises(JobCancelled):
        drive(segment(net, card2d, vol.array, sp, "cpu", cancel=token, batch_size=2),
              Reporter(lambda p: progress(p.done, p.total, p.message), token))
    elapsed = time.monotonic() - t0  # informative only (the benchmark measures it)
    # one lane: exactly the first batch ran; several: each lane finishes at most the batch
    # it was running when the user pressed Cancel
    lanes = cpu_lanes(torch.get_num_threads(), vol.shape[0])
    assert steps[0] == 0 and 2 <= steps[1] <= 2 * lanes and len(steps) <= 1 + lanes, \
        (steps, elapsed)
    assert 1 <= len(forwards) <= 1 + (lanes - 1) * 2, (len(forwards), lanes)
    assert not any(t.name.startswith("seg-lane") for t in threading.enumerate())


def test_cancel_between_sliding_windows_with_a_plain_callable(ct):
    vol, sp = ct
    card = seg_card(3, [5.0, 3.0, 3.0], [16, 64, 64])
    net = tiny_net(card)
    forwards = []
    net.register_forward_hook(lambda *a: forwards.append(1))
    with pytest.raises(Cancelled):
        drive(segment(net, card, vol.array[20:52, 100:400, 100:400], sp, "cpu",
                      cancel=lambda: len(forwards) >= 3))
    assert len(forwards) == 3  # stopped inside the first slab, between windows


def test_classify_real_pneumonia_images(shared_data):
    card = ModelRegistry().get("pneumonia-cxr")
    net = load_model(card)
    data = np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz")
    images, truth = data["test_images"][:20], data["test_labels"][:20, 0]
    results = [drive(classify(net, card, im)) for im in images]
    for r in results:
        assert set(r.probs) == set(card.labels)
        assert sum(r.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.label == max(r.probs, key=r.probs.get)
    accuracy = np.mean([card.labels.index(r.label) == t for r, t in zip(results, truth)])
    assert accuracy > 0.7


def test_model_cache_keeps_one_model(card2d):
    loads = []

    def loader(card, device):
        loads.append(card.ref)
        return tiny_net(card)

    cache = ModelCache(loader)
    a = cache.get(card2d, "cpu")
    assert cache.get(card2d, "cpu") is a and loads == ["tiny-seg:0.1.0"]
    ref = weakref.ref(a)
    del a
    other = seg_card(2, [2.0, 2.0], [240, 240], name="other-seg")
    b = cache.get(other, "cpu")
    gc.collect()
    assert ref() is None and cache.key == ("other-seg:0.1.0", "cpu") and not b.training
    cache.clear()
    assert cache.key is None


def test_device_choice_label_threads_and_autocast():
    assert choose_device("cpu") == "cpu"
    assert choose_device("auto") in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            choose_device("cuda", strict=True)
        assert choose_device("cuda") == "cpu"  # non-strict: falls back
    with pytest.raises(DeviceError):
        choose_device("tpu")
    n = configure_threads()
    assert n == worker_threads() == torch.get_num_threads() >= 1
    assert device_label("cpu") == f"CPU ({n} thread{'s' if n != 1 else ''})"
    with autocast("cpu"):
        assert not torch.is_autocast_enabled()


def test_fast_upsampled_argmax_equals_full_argmax_on_real_predictions():
    """The label shortcut (copy the class where the 2x2 source stencil agrees) must give the
    same labels as an argmax over the full-resolution upsampled probabilities."""
    import torch

    from medviewer.ai.seg_outputs import argmax0, labels_up, normalised_entropy_t
    from medviewer.ai.preprocess import _resize_xy
    from medviewer.ai.registry import ModelRegistry, load_model
    from medviewer.io.load import open_first

    card = ModelRegistry().get("ct-abdomen-organs")
    model = load_model(card)
    vol = open_first([Path(__file__).resolve().parents[3].parent / "shared" / "data"
                      / "tcia_cmb_crc_ct_chest"])
    x = torch.from_numpy(np.clip((vol.array[[20, 60, 95], ::2, ::2].astype(np.float32) + 1000)
                                 / 1500, 0, 1))[:, None]  # 3 real slices, 256x256
    with torch.inference_mode():
        probs = torch.softmax(model(x[:, :, :160, :160]).float(), 1)
    for p in probs:  # (K, 160, 160) -> upsampled to 333 x 347 (not a multiple)
        u = _resize_xy(p[None], (333, 347), True)[0]
        fast = labels_up(p, (333, 347))
        full = argmax0(u)
        assert len(torch.unique(full)) > 1  # a real, multi-class prediction
        assert torch.equal(fast, full)
        # entropy from the model grid, resampled, vs the entropy of the resampled probabilities
        ent_up = _resize_xy(normalised_entropy_t(p)[None, None], (333, 347), True)[0, 0]
        ent_full = normalised_entropy_t(u)
        assert ent_full.std() > 0.05  # an informative map: organs sure, edges unsure
        assert (ent_up - ent_full).abs().mean() < 0.01


def test_cpu_lanes_give_the_one_lane_result_and_hand_entropy_over_in_slice_order(
        ct, card2d, monkeypatch):
    vol, sp = ct
    net = tiny_net(card2d)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    runs = {}
    try:
        for lanes in ("1", "2"):
            monkeypatch.setenv("MEDVIEWER_AI_LANES", lanes)
            heard = []
            res = drive(segment(net, card2d, vol.array[30:70], sp, "cpu",
                                entropy_sink=lambda a, e, lab: heard.append((a, e.shape[0]))))
            runs[lanes] = res, heard
            assert torch.get_num_threads() == 2  # the job gives the threads back
    finally:
        torch.set_num_threads(before)
    monkeypatch.delenv("MEDVIEWER_AI_LANES")
    assert cpu_lanes(2, 40) == 2 and cpu_lanes(2, 1) == 1 and cpu_lanes(16, 40) == 4
    (one, heard1), (two, heard2) = runs["1"], runs["2"]
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.entropy, two.entropy)
    for heard in (heard1, heard2):  # every slice once, in order
        starts = [a for a, _ in heard]
        assert starts == sorted(starts) and sum(n for _, n in heard) == 40
        assert all(a + n == b for (a, n), (b, _) in zip(heard, heard[1:]))
