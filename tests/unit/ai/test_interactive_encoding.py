"""The learned engine's focus window and input encoding (no network): real TotalSegmentator
slices go onto the window grid and back, prompts land where they were given, and the training
sampler gives consistent (input, target) pairs from the real labelled data."""
import numpy as np
import pytest

from medviewer.ai.interactive.encoding import (CHANNELS, GRID, SlicePrompts, Window, encode,
                                               fit_window, from_window, to_window)
from medviewer.core.click_sim import dice
from medviewer.services.interactive import load_volume, reference_mask

TOTALSEG = "totalseg/tests/reference_files"


@pytest.fixture(scope="module")
def liver(shared_data):
    vol = load_volume(shared_data / TOTALSEG / "example_ct_sm.nii.gz")
    ref = reference_mask(shared_data / TOTALSEG / "example_seg.nii.gz", vol.geometry, 5)
    z = int(np.argmax(ref.sum(axis=(1, 2))))
    return vol.array[z].astype(np.float32), ref[z]


@pytest.mark.parametrize("spacing", [(3.0, 3.0), (0.8, 2.5)])
def test_window_round_trip_keeps_the_mask(liver, spacing):
    _, ref = liver
    win = fit_window(ref, np.argwhere(ref)[:1], spacing, margin=1.4)
    on_grid = to_window(ref.astype(np.float32), win, spacing, outside=0.0)
    assert on_grid.shape == (GRID, GRID)
    back = from_window(on_grid, win, ref.shape, spacing) > 0.5
    assert dice(back, ref) > 0.93
    # the whole object fits, with a margin: nothing on the window's edge
    m = on_grid > 0.5
    assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def test_outside_the_slice_reads_as_background(liver):
    image, ref = liver
    win = Window(0.0, 0.0, 200.0)  # centred on the slice's corner pixel
    img = to_window(image, win, (3.0, 3.0))
    assert np.allclose(img[: GRID // 4, : GRID // 4], image.min())
    assert to_window(np.ones_like(image), win, (3.0, 3.0), outside=0.0)[0, 0] == 0.0


def test_encoding_puts_each_prompt_in_its_channel(liver):
    image, ref = liver
    inside = tuple(int(v) for v in np.argwhere(ref)[len(np.argwhere(ref)) // 2])
    outside = tuple(int(v) for v in np.argwhere(~ref)[0])
    ys, xs = np.nonzero(ref)
    box = (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()))
    win = fit_window(ref, [inside], (3.0, 3.0), margin=2.0)
    x = encode(image, SlicePrompts([inside], [outside], [box]), (3.0, 3.0), win, prev_mask=ref)
    assert x.shape == (len(CHANNELS), GRID, GRID) and x.dtype == np.float32
    gy, gx = (int(round(v)) for v in win.to_grid(inside, (3.0, 3.0)))
    pos = CHANNELS.index("positive")
    assert np.unravel_index(np.argmax(x[pos]), x[pos].shape) == (gy, gx)
    assert x[CHANNELS.index("negative")].max() < 0.5  # the negative click is outside the window
    prev = x[CHANNELS.index("previous")]
    grid_ref = to_window(ref.astype(np.float32), win, (3.0, 3.0), outside=0.0) > 0.5
    assert dice(prev > 0.5, grid_ref) > 0.95
    boxc = x[CHANNELS.index("box")] > 0.5
    assert boxc[grid_ref].mean() > 0.97 and boxc.mean() < 0.8
    # the image relative to the clicked value: the liver reads near 0, air far below
    rel = x[CHANNELS.index("rel_coarse")]
    assert abs(float(np.median(rel[grid_ref]))) < 0.3


def test_sampler_pairs_are_consistent(shared_data):
    from medviewer.ai.interactive.train_data import (HELD_OUT_CLASSES, Case, Sampler, case_files,
                                                     load_case)

    case = load_case("totalseg_mr", case_files()["totalseg_mr"])
    for cls in HELD_OUT_CLASSES:
        case.structures.pop(cls, None)
    assert "liver" in case.structures and "spleen" not in case.structures
    sampler = Sampler([Case(case.name, case.image, case.spacing_zyx,
                            {"liver": case.structures["liver"]})], seed=1)
    pos = CHANNELS.index("positive")
    hits = 0
    for _ in range(40):
        x, y = sampler.sample()
        assert x.shape == (len(CHANNELS), GRID, GRID) and y.shape == (GRID, GRID)
        assert y.any()  # the object is in the window
        if x[pos].max() > 0.99:
            hits += y[np.unravel_index(np.argmax(x[pos]), y.shape)] > 0
    assert hits >= 10  # positive clicks (when there are) lie on the object
