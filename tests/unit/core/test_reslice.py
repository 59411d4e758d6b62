"""Reslicing: radiological orientation, edge letters, uneven grids and click round trips."""
from pathlib import Path

import numpy as np
import pydicom
import pytest

from _core_data import CHEST_CT, DATA, OBLIQUE_ALL, OBLIQUE_AX, geometry_from_folder  # noqa: F401
from medviewer.core.geometry import Geometry
from medviewer.core.reslice import PLANES, Reslicer, SlabCache, direction_letters



# plane -> (LPS axis and sign that display rows walk toward, same for cols)
EXPECTED_WALK = {"axial": ((1, +1), (0, +1)), "coronal": ((2, -1), (0, +1)),
                 "sagittal": ((2, -1), (1, +1))}


@pytest.fixture(scope="module")
def chest_geometry():
    return geometry_from_folder(CHEST_CT)


def test_chest_ct_edge_letters(chest_geometry):
    r = Reslicer(chest_geometry)
    ax = r.edges("axial")
    assert (ax.left, ax.right, ax.top, ax.bottom) == ("R", "L", "A", "P")
    co = r.edges("coronal")
    assert (co.left, co.right, co.top, co.bottom) == ("R", "L", "S", "I")
    sa = r.edges("sagittal")
    assert (sa.left, sa.right, sa.top, sa.bottom) == ("A", "P", "S", "I")
    assert r.native_plane() == "axial"
    assert r.n_slices("axial") == 100 and r.display_shape("axial") == (512, 512)
    assert r.pixel_spacing("coronal") == pytest.approx((2.5, 0.898438), abs=1e-4)


@pytest.mark.parametrize("folder", [CHEST_CT, OBLIQUE_ALL, OBLIQUE_AX], ids=["ct", "obl20", "ax30"])
def test_display_walks_radiological_directions(folder):
    g = geometry_from_folder(folder)
    r = Reslicer(g)
    for plane in PLANES:
        s = r.n_slices(plane) // 2
        p00 = r.to_lps(plane, s, 5, 5)
        drow = r.to_lps(plane, s, 6, 5) - p00
        dcol = r.to_lps(plane, s, 5, 6) - p00
        (rax, rsign), (cax, csign) = EXPECTED_WALK[plane]
        assert np.argmax(np.abs(drow)) == rax and np.sign(drow[rax]) == rsign, plane
        assert np.argmax(np.abs(dcol)) == cax and np.sign(dcol[cax]) == csign, plane


def test_oblique_letters_are_compound_with_the_right_main_letter():
    r = Reslicer(geometry_from_folder(OBLIQUE_ALL))
    e = r.edges("axial")
    assert e.top[0] == "A" and e.left[0] == "R" and e.bottom[0] == "P" and e.right[0] == "L"
    assert len(e.top) > 1 or len(e.left) > 1  # 20 degrees oblique shows a secondary letter
    assert direction_letters([0.0, 0.0, 1.0]) == "S"
    assert direction_letters([-0.9, 0.4, 0.0]) == "RP"


@pytest.mark.parametrize("folder", [CHEST_CT, OBLIQUE_ALL], ids=["ct", "obl20"])
def test_extracted_pixels_match_index_map(folder):
    g = geometry_from_folder(folder)
    arr = np.arange(np.prod(g.shape), dtype=np.int32).reshape(g.shape)
    r = Reslicer(g)
    rng = np.random.default_rng(0)
    for plane in PLANES:
        s = r.n_slices(plane) // 3
        sl = r.extract(arr, plane, s)
        assert sl.image.shape == r.display_shape(plane)
        for row, col in rng.integers(0, min(sl.image.shape), size=(10, 2)):
            zyx = np.round(r.to_index(plane, s, row, col)).astype(int)
            assert sl.image[row, col] == arr[tuple(zyx)]


def test_click_index_lps_round_trip():
    g = geometry_from_folder(OBLIQUE_ALL)
    r = Reslicer(g)
    for plane in PLANES:
        s = 7
        row, col = 12.25, 30.5
        lps = r.to_lps(plane, s, row, col)
        zyx = g.lps_to_index_zyx(lps)
        assert r.slice_index(plane, zyx) == s
        assert r.to_display(plane, zyx) == pytest.approx((row, col), abs=1e-6)


def test_even_slices_are_views():
    g = Geometry(shape=(20, 30, 40))
    arr = np.zeros(g.shape, np.int16)
    r = Reslicer(g)
    for plane in PLANES:
        assert np.shares_memory(r.extract(arr, plane, 3).image, arr)


def test_uneven_spacing_shows_true_positions():
    offs = (0.0, 1.25, 2.5, 202.5)  # as in monai_testing_data's 4-slice CT
    g = Geometry(shape=(4, 8, 10), spacing=(1.0, 1.0, 1.25), slice_offsets=offs)
    arr = np.broadcast_to(np.arange(4, dtype=np.int16)[:, None, None], g.shape).copy()
    r = Reslicer(g)
    rows, cols = r.display_shape("coronal")
    assert rows == 163 and cols == 10
    assert r.pixel_spacing("coronal")[0] == pytest.approx(1.25)
    img = r.extract(arr, "coronal", 4).image
    # superior at the top: the slice at 202.5 mm is row 0, slice 0 the bottom row
    assert img[0, 0] == 3 and img[-1, 0] == 0 and img[100, 0] == 2
    assert r.to_display("coronal", (2, 4, 5))[0] == pytest.approx((202.5 - 2.5) / 1.25)
    assert r.to_index("coronal", 4, 0.0, 0.0)[0] == pytest.approx(3.0)
    # a click half-way down the big gap maps to a true position between slices 2 and 3
    mid = r.to_index("coronal", 4, 80.0, 0.0)[0]
    assert 2.0 < mid < 3.0
    assert r.extract(arr, "axial", 2).image.shape == (8, 10)


def _chest_array(n_slices: int) -> np.ndarray:
    """The real chest CT's pixel data (rows/cols as stored), ``n_slices`` of them."""
    files = sorted(CHEST_CT.glob("*.dcm"))[:n_slices]
    return np.stack([pydicom.dcmread(p).pixel_array.astype(np.int16) for p in files])


@pytest.mark.parametrize("folder", [CHEST_CT, OBLIQUE_ALL], ids=["ct", "obl20"])
def test_slab_cache_gives_the_pixels_of_extract(folder):
    g0 = geometry_from_folder(folder)
    arr = _chest_array(40)  # 40 x 512 sagittal slices: large enough to be worth blocks
    g = Geometry(shape=arr.shape, spacing=g0.spacing, origin=g0.origin, direction=g0.direction)
    r = Reslicer(g)
    used_blocks = False
    for plane in PLANES:
        cache = SlabCache(r, plane, block=8, phase=3)
        k = r.n_slices(plane)
        # forwards, backwards in steps of 3, and outside the range (clamped like extract)
        for i in list(range(0, k, 5)) + list(range(k - 1, -1, -3)) + [-4, k + 7]:
            got, want = cache.extract(arr, i), r.extract(arr, plane, i)
            assert got.index == want.index and got.image.shape == want.image.shape
            np.testing.assert_array_equal(got.image, want.image)
        used_blocks |= bool(cache._blocks)
    assert used_blocks  # the strided plane was served from blocks, not from extract


def test_slab_cache_on_an_uneven_grid_and_a_flipped_axis():
    offs = tuple(float(v) for v in np.cumsum([0.0] + [1.0, 3.0] * 6)[:12])
    arr = (np.arange(12 * 130 * 140) % 3001 - 1000).astype(np.int16).reshape(12, 130, 140)
    g = Geometry(shape=arr.shape, spacing=(0.8, 0.9, 2.0), slice_offsets=offs,
                 direction=(-1, 0, 0, 0, 1, 0, 0, 0, -1))
    r = Reslicer(g)
    for plane, phase in zip(PLANES, (0, 5, 11)):
        cache = SlabCache(r, plane, block=16, phase=phase)
        for i in range(r.n_slices(plane)):
            cache.extract(arr, i)  # the first call of an array is a plain extract
            np.testing.assert_array_equal(cache.extract(arr, i).image, r.extract(arr, plane, i).image)


def test_slab_cache_follows_edits_new_arrays_and_versions():
    arr = _chest_array(40)
    r = Reslicer(Geometry(shape=arr.shape))
    plane = "sagittal"
    assert r.fixed_axis(plane) == 2 and SlabCache.worthwhile(arr, 2)
    cache = SlabCache(r, plane, block=16)
    cache.extract(arr, 100)
    before = cache.extract(arr, 101).image.copy()  # from the block 96..111
    assert 96 in cache._blocks

    arr[:, :, 103] += 7  # edited in place, on a slice of the cached block not shown yet
    stale = cache.extract(arr, 103).image
    assert not np.array_equal(stale, r.extract(arr, plane, 103).image)  # as documented
    cache.invalidate()
    np.testing.assert_array_equal(cache.extract(arr, 103).image, r.extract(arr, plane, 103).image)

    # a new version of the same array is never served from the old blocks
    arr[:, :, 101] -= 5
    cache.extract(arr, 101, version=2)
    np.testing.assert_array_equal(cache.extract(arr, 101, version=2).image, before - 5)
    # nor is another array with the same shape
    other = arr.copy()
    other[:, :, 101] = 1
    assert (cache.extract(other, 101, version=2).image == 1).all()
    assert (cache.extract(other, 101, version=2).image == 1).all()


def test_slab_cache_is_not_used_where_slices_are_contiguous_or_small():
    r = Reslicer(Geometry(shape=(80, 256, 256)))
    arr = np.zeros((80, 256, 256), np.int16)
    assert not SlabCache.worthwhile(arr, 0) and not SlabCache.worthwhile(arr, 1)
    assert SlabCache.worthwhile(arr, 2)
    assert not SlabCache.worthwhile(np.zeros((20, 30, 40), np.int16), 2)
    cache = SlabCache(r, "axial")
    for _ in range(3):
        assert np.shares_memory(cache.extract(arr, 4).image, arr)  # still a view, no copy
