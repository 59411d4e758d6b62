"""The learned interactive engine with the shipped model (models/interactive-promptable) on real
images: simulated clicks on TotalSegmentator organs (a held-out class among them), negative
clicks obeyed, boxes, correction of a previous mask, propagation to the next slice, and the
engine chosen by default."""
import numpy as np
import pytest
from scipy import ndimage

from medviewer.ai.interactive import learned
from medviewer.ai.interactive.encoding import SlicePrompts
from medviewer.core.click_sim import dice
from medviewer.core.prompts import Box, Point, Prompts
from medviewer.services import interactive as svc

TOTALSEG = "totalseg/tests/reference_files"


@pytest.fixture(scope="module")
def ct(shared_data):
    vol = svc.load_volume(shared_data / TOTALSEG / "example_ct_sm.nii.gz")
    seg = shared_data / TOTALSEG / "example_seg.nii.gz"
    return vol, {name: svc.reference_mask(seg, vol.geometry, v)
                 for name, v in (("liver", 5), ("spleen", 1), ("stomach", 6))}


def test_the_shipped_model_is_the_default_engine():
    assert svc.available_engines()["learned"] is None
    assert svc.default_engine() == "learned" == svc.resolve_engine("auto")


@pytest.mark.parametrize("organ", ["liver", "spleen", "stomach"])  # spleen: a held-out class
def test_simulated_clicks_reach_dice_080(ct, organ):
    vol, refs = ct
    res = svc.simulate(vol, refs[organ], max_clicks=10, engine="learned", stop_at=0.9)
    assert res.clicks[0].positive and refs[organ][res.clicks[0].voxel]
    assert max(res.dices) >= 0.8, res.dices


def test_a_negative_click_removes_the_region_it_lands_in(ct):
    vol, refs = ct
    ref = refs["liver"]
    z = int(np.argmax(ref.sum(axis=(1, 2))))
    image = vol.array[z].astype(np.float32)
    inside = tuple(int(v) for v in np.argwhere(ndimage.binary_erosion(ref[z], iterations=3))[0])
    mask = learned.segment_2d(image, Prompts().add(Point((z,) + inside)), (3.0, 3.0), z=z)
    rng = np.random.default_rng(0)
    # negative clicks on pixels of the mask that are away from the positive click
    far = np.argwhere(mask & (np.hypot(*np.indices(mask.shape) - np.array(inside)[:, None, None])
                              > 10))
    assert len(far)
    for yx in far[rng.choice(len(far), 5, replace=False)]:
        prompts = Prompts().add(Point((z,) + inside)).add(Point((z, int(yx[0]), int(yx[1])),
                                                                False))
        after = learned.segment_2d(image, prompts, (3.0, 3.0), z=z, prev_mask=mask)
        assert not after[tuple(yx)] and after[inside]


def test_obey_removes_the_negative_region_and_keeps_positive_ones():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True
    mask[25:35, 25:35] = True
    got = learned.obey(mask, SlicePrompts([(10, 10)], [(30, 30)]))
    assert got[5:15, 5:15].all() and not got[25:35, 25:35].any()
    # a negative click inside the positive region takes the part nearer to it than to the
    # positive click (here the half of a bar beyond the midpoint), keeps the rest
    bar = np.zeros((20, 60), bool)
    bar[5:15, 5:55] = True
    got = learned.obey(bar, SlicePrompts([(10, 10)], [(10, 50)]))
    assert got[10, 10] and got[5:15, 5:29].all() and not got[:, 31:].any()


def test_a_box_alone_segments_what_is_in_it(ct):
    vol, refs = ct
    ref = refs["liver"]
    z = int(np.argmax(ref.sum(axis=(1, 2))))
    ys, xs = np.nonzero(ref[z])
    box = Box(z, int(ys.min()) - 2, int(xs.min()) - 2, int(ys.max()) + 2, int(xs.max()) + 2)
    mask = learned.segment_2d(vol.array[z], Prompts().add(box), (3.0, 3.0), z=z)
    assert dice(mask, ref[z]) > 0.75
    assert not mask[: box.y0].any() and not mask[box.y1 + 1:].any()


def test_propagation_carries_the_liver_to_neighbouring_slices(ct):
    vol, refs = ct
    ref = refs["liver"]
    z = int(np.argmax(ref.sum(axis=(1, 2))))
    step = learned.slice_step(vol.array, ref[z], z, Prompts(), (3.0, 3.0, 3.0))
    prev = ref[z]
    for k in (z + 1, z + 2, z + 3):
        got = step(k, prev)
        assert dice(got, ref[k]) > 0.8
        prev = got
