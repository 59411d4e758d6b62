"""Thick slabs and oblique reformats on the real chest CT (100 slices, 0.898 mm pixels, 2.5 mm)."""
import math

import numpy as np
import pytest

from _core_data import CHEST_CT, sitk_oblique
from medviewer.core.reformat import (PLANES, ObliqueFrame, ortho_slab, slab_count, slab_range,
                                     trilinear)
from medviewer.core.reslice import Reslicer


@pytest.fixture(scope="module")
def chest():
    from medviewer.io.discover import scan_paths
    from medviewer.io.load import load_series

    return load_series(scan_paths([CHEST_CT]).series[0])


def test_thickness_maps_to_slices_of_the_plane_spacing(chest):
    r = Reslicer(chest.geometry)
    assert slab_count(0, 2.5) == 1 and slab_count(10, 2.5) == 4 and slab_count(1, 2.5) == 1
    assert slab_count(10, 0.898438) == 11 and slab_count(4.5, 0.898438) == 5
    assert slab_range(50, 4, 100) == (49, 53) and slab_range(1, 5, 100) == (0, 4)
    with pytest.raises(ValueError):
        ortho_slab(r, chest.array, "axial", 5, 10, "maximum")
    # 10 mm: 4 axial slices (2.5 mm apart) but 11 coronal / sagittal slices (0.898 mm apart)
    ax = ortho_slab(r, chest.array, "axial", 50, 10, "mip")
    np.testing.assert_array_equal(ax.image, r.extract(chest.array[49:53].max(0, keepdims=True), "axial", 0).image)
    assert ax.index == 50 and ax.image.shape == (512, 512)


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize("mode,fn", [("mip", np.max), ("minip", np.min), ("average", np.mean)])
def test_slab_equals_numpy_over_the_same_slices(chest, plane, mode, fn):
    r = Reslicer(chest.geometry)
    fixed = r.fixed_axis(plane)
    index = 60
    spacing = chest.geometry.spacing[2 - fixed]
    n = slab_count(7.5, spacing)
    got = ortho_slab(r, chest.array, plane, index, 7.5, mode)
    first = index - (n - 1) // 2
    want = fn(np.take(chest.array, range(first, first + n), axis=fixed).astype(np.float64), axis=fixed)
    thin = r.extract(chest.array, plane, index)
    assert got.image.shape == thin.image.shape
    # the same display orientation as the thin slice: reorient the numpy reduction like it
    want_img = r.extract(np.expand_dims(want, fixed), plane, 0).image
    np.testing.assert_allclose(got.image, want_img, atol=1e-3)
    assert not np.array_equal(got.image, thin.image)  # a slab, not the thin slice


def _sitk_plane(volume, frame, plane, cursor_lps):
    """The same oblique plane by SimpleITK (linear), -5000 outside."""
    return sitk_oblique(volume, frame, plane, [frame.view_of(plane, cursor_lps)[2]])[0]


def test_unrotated_frame_reproduces_the_orthogonal_axial_slice(chest):
    r = Reslicer(chest.geometry)
    centre = (37, 250, 260)
    f = ObliqueFrame.identity(r, centre)
    assert f.is_identity
    img = f.image(chest.array, "axial", chest.geometry.index_zyx_to_lps(centre))
    np.testing.assert_allclose(img, r.extract(chest.array, "axial", 37).image, atol=1e-3)


def test_oblique_planes_match_simpleitk_within_1_hu(chest):
    r = Reslicer(chest.geometry)
    centre = np.array(chest.shape) // 2
    f = ObliqueFrame.identity(r, centre)
    f.rotate("axial", math.radians(25))
    f.rotate("coronal", math.radians(-20))
    assert not f.is_identity
    cursor = chest.geometry.index_zyx_to_lps(centre + np.array([5, -30, 20]))
    for plane in PLANES:
        ours = f.image(chest.array, plane, cursor, fill=-5000.0)
        ref = _sitk_plane(chest, f, plane, cursor)
        inside = ref > -5000
        assert inside.mean() > 0.5
        np.testing.assert_array_equal(ours == -5000.0, ~inside)
        assert np.abs(ours[inside] - ref[inside]).mean() <= 1.0  # the goal
        assert np.abs(ours[inside] - ref[inside]).max() < 0.01  # measured: ~4e-6 HU
    # the three planes stay perpendicular; the view one rotates in keeps its own axes
    n = np.column_stack([f.axes(p)[:, 2] for p in PLANES])
    np.testing.assert_allclose(n.T @ n, np.eye(3), atol=1e-9)


def test_rotating_in_a_view_turns_its_crosshair_lines_not_its_picture(chest):
    r = Reslicer(chest.geometry)
    f = ObliqueFrame.identity(r, np.array(chest.shape) // 2)
    before = f.axes("axial").copy()
    assert f.line_angle("axial", "coronal") == pytest.approx(0.0, abs=1e-9)
    f.rotate("axial", math.radians(30))
    np.testing.assert_allclose(f.axes("axial"), before, atol=1e-9)
    assert abs(f.line_angle("axial", "coronal")) == pytest.approx(30.0, abs=1e-6)
    assert abs(f.line_angle("axial", "sagittal")) == pytest.approx(60.0, abs=1e-6)  # 90 - 30
    # recentring keeps every picture where it was
    p = chest.geometry.index_zyx_to_lps((40, 200, 300))
    cursor = chest.geometry.index_zyx_to_lps((45, 180, 310))
    pixel = {q: f.lps_of(q, 12.0, 34.0, f.view_of(q, cursor)[2]) for q in PLANES}
    f.recentre(p)
    for q in PLANES:
        np.testing.assert_allclose(f.lps_of(q, 12.0, 34.0, f.view_of(q, cursor)[2]), pixel[q], atol=1e-6)


def test_oblique_slab_mip_is_the_max_over_its_planes(chest):
    r = Reslicer(chest.geometry)
    centre = np.array(chest.shape) // 2
    f = ObliqueFrame.identity(r, centre)
    f.rotate("coronal", math.radians(20))
    cursor = chest.geometry.index_zyx_to_lps(centre)
    step = f.normal_step("axial")
    # one voxel along a normal tilted 20 degrees from the 2.5 mm axis towards a 0.898 mm one
    t = math.radians(20)
    assert step == pytest.approx(1 / math.hypot(math.sin(t) / 0.898438, math.cos(t) / 2.5), rel=1e-4)
    assert f.normal_step("coronal") == pytest.approx(0.898438)  # the rotation axis
    assert f.normal_step("sagittal") == pytest.approx(1 / math.hypot(math.cos(t) / 0.898438, math.sin(t) / 2.5), rel=1e-4)
    slab = f.image(chest.array, "axial", cursor, 4 * step, "mip", fill=-2000)
    n = f.axes("axial")[:, 2]
    planes = [f.image(chest.array, "axial", cursor + k * step * n, fill=-2000) for k in (-1, 0, 1, 2)]
    np.testing.assert_allclose(slab, np.max(planes, axis=0), atol=1e-3)
    avg = f.image(chest.array, "axial", cursor, 4 * step, "average", fill=-2000)
    np.testing.assert_allclose(avg, np.mean(planes, axis=0), atol=1e-2)


def test_trilinear_clamps_and_fills_like_itk():
    a = np.arange(8, dtype=np.int16).reshape(2, 2, 2)
    got = trilinear(a, np.array([0.5, -0.4, 1.45, -0.6]), np.array([0.5, 0.0, 1.0, 0.0]),
                    np.array([0.5, 0.0, 1.0, 0.0]), fill=-1)
    np.testing.assert_allclose(got, [3.5, 0.0, 7.0, -1.0])


def test_uneven_slices_slab_and_oblique():
    """monai_testing_data's 4-slice CT layout (1.25-202.5 mm gaps): slabs count the mean step,
    oblique planes place samples at the true slice positions."""
    from medviewer.core.geometry import Geometry

    offs = (0.0, 1.25, 2.5, 202.5)
    g = Geometry(shape=(4, 8, 10), spacing=(1.0, 1.0, 1.25), slice_offsets=offs)
    arr = np.broadcast_to(np.arange(4, dtype=np.int16)[:, None, None] * 100, g.shape).copy()
    r = Reslicer(g)
    slab = ortho_slab(r, arr, "axial", 1, 140.0, "mip")  # mean step 67.5 mm: 2 slices, 1 and 2
    np.testing.assert_array_equal(slab.image, r.extract(arr[1:3].max(0, keepdims=True), "axial", 0).image)
    f = ObliqueFrame.identity(r, (2, 4, 5))
    f.rotate("axial", math.radians(10))
    mid = g.index_zyx_to_lps((2.5, 4, 5))  # half-way through the 200 mm gap
    co = f.image(arr, "coronal", mid, fill=-1)
    inside = co[co >= 0]
    assert inside.size and inside.min() >= 0 and inside.max() <= 300
    ax = f.image(arr, "axial", mid, fill=-1)
    assert np.allclose(ax[ax >= 0], 250.0, atol=1e-3)  # linear between slices 2 and 3


def test_two_thread_split_gives_the_same_samples(chest):
    """Large planes are sampled in two halves on two threads: the same numbers as one call."""
    from scipy import ndimage

    from medviewer.core import reformat

    rng = np.random.default_rng(0)
    z, y, x = (rng.uniform(-1, n, size=(400, 300)).astype(np.float32) for n in chest.shape)
    assert z.size >= reformat._SPLIT_POINTS
    got = trilinear(chest.array, z, y, x, fill=-7)
    want = ndimage.map_coordinates(chest.array, (z, y, x), order=1, mode="nearest", output=np.float32)
    outside = np.zeros(z.shape, bool)
    for c, n in zip((z, y, x), chest.shape):
        outside |= (c < -0.5) | (c >= n - 0.5)
    want[outside] = -7
    np.testing.assert_array_equal(got, want)
