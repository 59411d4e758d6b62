"""Oblique slabs from kept planes (core.slab_planes) on the real chest CT: the same pictures as
ObliqueFrame.image, one new plane per scroll step, and SimpleITK's planes reduced alike."""
import math

import numpy as np
import pytest

from _core_data import CHEST_CT, sitk_oblique
from medviewer.core.reformat import ObliqueFrame
from medviewer.core.reslice import Reslicer
from medviewer.core.slab_planes import SlabPlanes


@pytest.fixture(scope="module")
def chest():
    from medviewer.io.discover import scan_paths
    from medviewer.io.load import load_series

    return load_series(scan_paths([CHEST_CT]).series[0])


@pytest.fixture()
def frame(chest):
    f = ObliqueFrame.identity(Reslicer(chest.geometry), np.array(chest.shape) // 2)
    f.rotate("axial", math.radians(25))
    f.rotate("coronal", math.radians(-20))
    return f


def _sitk_slab(volume, frame, plane, depths, mode):
    """SimpleITK (linear) pictures of the slab's planes in one (rows, cols, n) grid, reduced."""
    stack = sitk_oblique(volume, frame, plane, depths)
    inside = (stack > -5000).all(axis=0)
    fn = {"mip": np.max, "minip": np.min, "average": np.mean}[mode]
    return fn(stack, axis=0), inside


@pytest.mark.parametrize("mode", ["mip", "minip", "average"])
def test_slab_matches_simpleitk_planes_reduced_alike(chest, frame, mode):
    cursor = chest.geometry.index_zyx_to_lps(np.array(chest.shape) // 2 + [5, -30, 20])
    depth = frame.view_of("axial", cursor)[2]
    depths = frame.slab_depths("axial", depth, 10.0)
    assert len(depths) == 5 and abs(np.mean(depths[:4]) - depth) <= frame.normal_step("axial")
    ours = frame.image(chest.array, "axial", cursor, 10.0, mode, fill=-5000.0)
    ref, inside = _sitk_slab(chest, frame, "axial", depths, mode)
    assert inside.mean() > 0.5
    diff = np.abs(ours[inside] - ref[inside])
    assert diff.mean() <= 1.0  # the goal
    assert diff.max() < 0.01  # the same planes, the same interpolation


def test_kept_planes_give_frame_image_and_a_step_costs_one_plane(chest, frame):
    cache = SlabPlanes()
    g, stack = chest.geometry, frame.planes("axial")
    fill = float(chest.array.min())
    cursor = g.index_zyx_to_lps(np.array(chest.shape) // 2 + [3, 7, -11])
    depth = frame.view_of("axial", cursor)[2]
    req = cache.request(stack, chest.array, frame.slab_depths("axial", depth, 20.0), "mip", fill)
    assert len(cache.missing(req)) == len(req.ks) == 11
    np.testing.assert_array_equal(cache.image(req), frame.image(chest.array, "axial", cursor, 20.0, "mip", fill=fill))
    assert cache.missing(req) == ()
    # the cursor one voxel step along the normal (as the wheel moves it): one new plane
    nxt = cursor + frame.axes("axial")[:, 2] * frame.normal_step("axial")
    req2 = cache.request(stack, chest.array, frame.slab_depths("axial", depth + frame.normal_step("axial"), 20.0),
                         "average", fill)
    assert cache.missing(req2) == (req.ks[-1] + 1,)
    np.testing.assert_array_equal(cache.image(req2), frame.image(chest.array, "axial", nxt, 20.0, "average", fill=fill))
    # a thinner slab or another mode: no new plane
    req3 = cache.request(stack, chest.array, frame.slab_depths("axial", depth, 5.0), "minip", fill)
    assert cache.missing(req3) == ()
    np.testing.assert_array_equal(cache.image(req3), frame.image(chest.array, "axial", cursor, 5.0, "minip", fill=fill))
    # turned planes: a new grid, every plane again
    frame.rotate("sagittal", math.radians(5))
    req4 = cache.request(frame.planes("axial"), chest.array, frame.slab_depths("axial", depth, 5.0), "mip", fill)
    assert cache.missing(req4) == req4.ks
    with pytest.raises(ValueError):  # a depth off the lattice: not a slab plane
        cache.request(stack, chest.array, [2.3 * stack.step, 3.3 * stack.step], "mip", fill)


def test_a_slab_of_more_planes_than_kept_is_sampled_whole_and_not_kept(chest, frame):
    cache = SlabPlanes(keep=3)
    fill = float(chest.array.min())
    cursor = chest.geometry.index_zyx_to_lps(np.array(chest.shape) // 2)
    depth = frame.view_of("axial", cursor)[2]
    for mode in ("mip", "average"):
        req = cache.request(frame.planes("axial"), chest.array, frame.slab_depths("axial", depth, 10.0), mode, fill)
        assert len(req.ks) == 5 and cache.streams(req)
        want = frame.image(chest.array, "axial", cursor, 10.0, mode, fill=fill)
        np.testing.assert_array_equal(cache.image(req), want)
        np.testing.assert_array_equal(req.reduced(), want)
        assert cache.missing(req) == req.ks  # nothing kept
    three = cache.request(frame.planes("axial"), chest.array, frame.slab_depths("axial", depth, 5.0), "mip", fill)
    assert len(three.ks) == 3 and not cache.streams(three)
