"""resample_even: linear resampling along z to even spacing, on real uneven and real even data."""
import nibabel as nib
import numpy as np
import pytest

from medviewer.core.geometry import Geometry
from medviewer.core.resample import MAX_SLICES, resample_even
from medviewer.core.volume import Volume
from medviewer.io.load import load_series
from medviewer.io.discover import scan_paths


@pytest.fixture(scope="module")
def uneven_ct(shared_data) -> Volume:
    cat = scan_paths([shared_data / "monai_testing_data/tests/testing_data/CT_DICOM"])
    assert len(cat.series) == 1
    return load_series(cat.series[0])


@pytest.fixture(scope="module")
def real_ct(shared_data) -> Volume:
    """The TotalSegmentator CT NIfTI (3 mm even), read with nibabel only."""
    img = nib.load(shared_data / "totalseg/tests/reference_files/example_ct_sm.nii.gz")
    arr = np.ascontiguousarray(np.asanyarray(img.dataobj).transpose(2, 1, 0))
    return Volume(arr, Geometry.from_affine_ras(img.affine, arr.shape), modality="CT")


def test_real_uneven_ct_resampled_at_its_smallest_step(uneven_ct):
    assert uneven_ct.geometry.slice_offsets == pytest.approx((0.0, 202.5, 203.75, 205.0))
    out = resample_even(uneven_ct, 1.25)
    assert out.shape == (165, 16, 16)
    assert out.array.dtype == np.int16 == uneven_ct.array.dtype
    assert not out.geometry.is_uneven and out.geometry.spacing[2] == 1.25
    # new slices that fall on original slices are those slices exactly
    for new_k, old_k in [(0, 0), (162, 1), (163, 2), (164, 3)]:
        np.testing.assert_array_equal(out.array[new_k], uneven_ct.array[old_k])
    # every new slice sits where the original geometry puts the same physical z
    for new_k in (0, 17, 80, 162, 164):
        lps = out.geometry.index_to_lps((3, 4, new_k))
        old_idx = uneven_ct.geometry.lps_to_index(lps)
        np.testing.assert_allclose(old_idx[:2], (3, 4), atol=1e-9)
        k0 = int(np.floor(old_idx[2] + 1e-9))
        w = old_idx[2] - k0
        a = uneven_ct.array[k0].astype(float)
        b = uneven_ct.array[min(k0 + 1, 3)].astype(float)
        np.testing.assert_array_equal(out.array[new_k], np.rint((1 - w) * a + w * b))
    assert out.warnings[-1].startswith("Resampled on request to even 1.25 mm")
    assert any(w.startswith("Original series: Uneven") for w in out.warnings)
    assert out.meta["resampled"]["original_offsets_mm"] == pytest.approx([0.0, 202.5, 203.75, 205.0])
    assert not out.array.flags.writeable


def test_default_step_is_the_median_step(uneven_ct):
    out = resample_even(uneven_ct)
    assert out.geometry.spacing[2] == uneven_ct.geometry.spacing[2] == 1.25
    assert out.shape[0] == 165


def test_real_slices_with_artificial_gaps_are_recovered(real_ct):
    keep = [0, 1, 2, 4, 7, 8, 9, 12]  # gaps of 1, 2 and 3 missing slices
    sz = real_ct.geometry.spacing[2]
    g = real_ct.geometry
    uneven = Volume(real_ct.array[keep].copy(),
                    Geometry(shape=(len(keep),) + g.shape[1:], spacing=g.spacing, origin=g.origin,
                             direction=g.direction, slice_offsets=tuple(k * sz for k in keep)),
                    modality="CT")
    out = resample_even(uneven, sz)
    assert out.shape == (13,) + g.shape[1:]
    np.testing.assert_allclose(out.geometry.affine_lps(), g.affine_lps(), atol=1e-9)
    for k in keep:
        np.testing.assert_array_equal(out.array[k], real_ct.array[k])
    # slice 3 is half-way between real slices 2 and 4
    expect = np.rint((real_ct.array[2].astype(float) + real_ct.array[4]) / 2)
    np.testing.assert_array_equal(out.array[3], expect)
    # interpolated slices resemble the real ones they replace far better than their neighbours
    err = np.abs(out.array[5].astype(float) - real_ct.array[5]).mean()
    assert err < np.abs(real_ct.array[4].astype(float) - real_ct.array[7]).mean()


def test_origin_moves_when_the_first_offset_is_not_zero(real_ct):
    g = real_ct.geometry
    vol = Volume(real_ct.array[:4].copy(),
                 Geometry(shape=(4,) + g.shape[1:], spacing=g.spacing, origin=g.origin,
                          direction=g.direction, slice_offsets=(6.0, 9.0, 15.0, 18.0)))
    out = resample_even(vol, 3.0)
    assert out.shape[0] == 5
    np.testing.assert_allclose(out.geometry.index_to_lps((0, 0, 0)), vol.geometry.index_to_lps((0, 0, 0)))
    np.testing.assert_allclose(out.geometry.index_to_lps((0, 0, 4)), vol.geometry.index_to_lps((0, 0, 3)))


def test_even_volume_unchanged_unless_a_spacing_is_asked(real_ct):
    assert resample_even(real_ct) is real_ct
    out = resample_even(real_ct, 1.5)
    assert out.shape[0] == 2 * real_ct.shape[0] - 1
    np.testing.assert_array_equal(out.array[::2], real_ct.array)


def test_float_and_rgb_volumes_keep_their_type(real_ct):
    g = Geometry(shape=(3, 4, 5), slice_offsets=(0.0, 1.0, 3.0))
    f = Volume(real_ct.array[:3, :4, :5].astype(np.float32), g)
    out = resample_even(f, 1.0)
    assert out.array.dtype == np.float32 and out.shape == (4, 4, 5)
    np.testing.assert_allclose(out.array[2], (f.array[1] + f.array[2]) / 2)
    rgb = Volume(np.stack([np.clip(real_ct.array[:3, :4, :5], 0, 255).astype(np.uint8)] * 3, -1), g)
    out = resample_even(rgb, 1.0)
    assert out.array.dtype == np.uint8 and out.array.shape == (4, 4, 5, 3)


def test_bad_spacings_are_refused(real_ct):
    with pytest.raises(ValueError):
        resample_even(real_ct, 0.0)
    with pytest.raises(ValueError):
        resample_even(real_ct, -1.0)
    with pytest.raises(ValueError, match="more than"):
        resample_even(real_ct, real_ct.geometry.spacing[2] * (real_ct.shape[0] - 1) / (MAX_SLICES + 10))
