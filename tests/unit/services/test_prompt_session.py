"""The prompt session (Qt-free) on the real TotalSegmentator CT: each prompt corrects the result
of those before it, undo restores the earlier result exactly from the cache, 3D carries the
start slice through and a prompt on another slice corrects it there, and coronal prompts come
back on the volume's grid."""
import numpy as np
import pytest
from scipy import ndimage

from medviewer.core.click_sim import dice
from medviewer.services.interactive import load_volume, reference_mask
from medviewer.services.prompt_session import (PromptEntry, PromptSession, ResultCache,
                                               run_snapshot)

TOTALSEG = "totalseg/tests/reference_files"


@pytest.fixture(scope="module")
def ct(shared_data):
    vol = load_volume(shared_data / TOTALSEG / "example_ct_sm.nii.gz")
    liver = reference_mask(shared_data / TOTALSEG / "example_seg.nii.gz", vol.geometry, 5)
    return vol, liver


def _deep(mask2d):
    d = ndimage.distance_transform_edt(mask2d)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(d)), d.shape))


def test_prompts_chain_and_undo_restores_the_earlier_result(ct):
    vol, liver = ct
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    s = PromptSession("classical")
    s.add(PromptEntry("point", ((z,) + _deep(liver[z]),), True))
    first = run_snapshot(vol, s.snapshot(), s.cache)
    assert first[z].any() and first.sum() == first[z].sum()
    assert dice(first[z], liver[z]) > 0.5
    neg = (z,) + _deep(first[z] & ~ndimage.binary_erosion(liver[z], iterations=4)) \
        if (first[z] & ~liver[z]).any() else (z,) + _deep(first[z])
    s.add(PromptEntry("point", (neg,), False))
    second = run_snapshot(vol, s.snapshot(), s.cache)
    assert not second[neg]
    s.undo()
    key = ("classical", 0, z, False, tuple(s.entries))
    assert s.cache.get(key) is not None  # the earlier result is kept
    again = run_snapshot(vol, s.snapshot(), s.cache)
    assert np.array_equal(again, first)


def test_three_d_then_a_correction_on_another_slice(ct):
    vol, liver = ct
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    s = PromptSession("classical")
    s.add(PromptEntry("point", ((z,) + _deep(liver[z]),), True))
    run_snapshot(vol, s.snapshot(), s.cache)
    s.set_three_d(True)
    m3 = run_snapshot(vol, s.snapshot(), s.cache)
    zs = np.flatnonzero(m3.any(axis=(1, 2)))
    assert len(zs) >= 5 and zs[0] < z < zs[-1]
    k = int(zs[-2])
    neg = (k,) + _deep(m3[k])
    s.add(PromptEntry("point", (neg,), False))
    m4 = run_snapshot(vol, s.snapshot(), s.cache)
    assert not m4[neg]
    assert np.array_equal(m4[z], m3[z])  # the start slice is an anchor: unchanged


def test_a_coronal_prompt_comes_back_on_the_volume_grid(ct):
    vol, liver = ct
    y = int(np.argmax(liver.sum(axis=(0, 2))))
    zx = _deep(liver[:, y, :])
    s = PromptSession("classical")
    s.add(PromptEntry("point", ((zx[0], y, zx[1]),), True, axis=1))
    m = run_snapshot(vol, s.snapshot(), ResultCache())
    assert m.shape == liver.shape and m[zx[0], y, zx[1]]
    assert m.sum() == m[:, y, :].sum()  # only on that coronal plane
    assert dice(m[:, y, :], liver[:, y, :]) > 0.5


def test_prompts_on_a_colour_ultrasound_use_its_grey_levels():
    import data_store  # pydicom-data: real ultrasound frames
    from pathlib import Path

    path = Path(data_store.__file__).parent / "data" / "US1_UNCR.dcm"
    vol = load_volume(path)
    assert vol.is_rgb and vol.array.shape == (1, 480, 640, 3)
    grey = vol.array[0].astype(float) @ [0.299, 0.587, 0.114]
    s = PromptSession("classical")
    # a click on the brightest structure of the frame (away from the text overlay at the top)
    region = grey[120:400, 120:520]
    y, x = np.unravel_index(int(np.argmax(ndimage.uniform_filter(region, 9))), region.shape)
    click = (0, int(y) + 120, int(x) + 120)
    s.add(PromptEntry("point", (click,), True))
    m = run_snapshot(vol, s.snapshot(), s.cache)
    assert m.shape == (1, 480, 640) and m[click]
    assert 50 < m.sum() < 0.5 * grey.size
    assert grey[m[0]].mean() > np.median(grey)  # it took bright tissue, not the background
