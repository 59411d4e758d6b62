"""The click simulator, Dice and NoC on the TotalSegmentator reference masks."""
import numpy as np
import pytest
from scipy import ndimage

from medviewer.core.click_sim import dice, next_click, noc
from medviewer.core.prompts import OutsideImage, Point, Prompts, point_from_mm

TOTALSEG = "totalseg/tests/reference_files"


@pytest.fixture(scope="module")
def ct_and_seg(shared_data):
    from medviewer.services.interactive import load_volume, reference_mask

    vol = load_volume(shared_data / TOTALSEG / "example_ct_sm.nii.gz")
    liver = reference_mask(shared_data / TOTALSEG / "example_seg.nii.gz", vol.geometry, 5)
    return vol, liver


def test_first_click_is_the_deepest_point_of_the_organ(ct_and_seg):
    _, liver = ct_and_seg
    ref = liver[int(np.argmax(liver.sum(axis=(1, 2))))]
    click = next_click(np.zeros_like(ref), ref)
    assert click.positive and ref[click.index]
    depth = ndimage.distance_transform_edt(np.pad(ref, 1))[1:-1, 1:-1]
    assert depth[click.index] == depth.max()


def test_false_region_gets_a_negative_click_and_equal_masks_none(ct_and_seg):
    _, liver = ct_and_seg
    ref = liver[int(np.argmax(liver.sum(axis=(1, 2))))]
    too_big = ndimage.binary_dilation(ref, iterations=6)
    click = next_click(too_big, ref)
    assert not click.positive and too_big[click.index] and not ref[click.index]
    assert next_click(ref, ref) is None


def test_dice_and_noc():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = np.zeros_like(a)
    b[:4] = True
    assert dice(a, b) == pytest.approx(2 * 40 / 90)
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert noc([0.5, 0.86, 0.91], 0.85) == 2 and noc([0.5, 0.86, 0.91], 0.90) == 3
    assert noc([0.5] * 30, 0.85) == 20


def test_mm_prompts_land_on_the_voxel_they_name(ct_and_seg):
    vol, _ = ct_and_seg
    g = vol.geometry
    lps = g.index_zyx_to_lps((12, 40, 55))
    assert point_from_mm(g, lps).voxel == (12, 40, 55)
    assert point_from_mm(g, lps, positive=False).positive is False
    with pytest.raises(OutsideImage):
        point_from_mm(g, g.index_zyx_to_lps((12, 40, 500)))
    p = Prompts().add(Point((3, 1, 1))).add(Point((5, 2, 2), False))
    assert p.slices() == [3, 5] and p.seeds(False) == [(5, 2, 2)]
