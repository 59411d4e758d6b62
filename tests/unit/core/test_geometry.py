"""Geometry: index <-> LPS maps, uneven slice offsets, RAS affines, orientation codes.

References are independent implementations that run here: SimpleITK's index->physical maps
(ITK is LPS with the same (x, y, z) index order) and nibabel's affine helpers."""
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core.geometry import Geometry

RNG = np.random.default_rng(20261124)


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))  # a random orthonormal matrix (proper or improper)


def _sitk_image(g: Geometry) -> sitk.Image:
    img = sitk.Image(list(g.size_xyz), sitk.sitkUInt8)
    img.SetSpacing(g.spacing)
    img.SetOrigin(g.origin)
    img.SetDirection(g.direction)
    return img


@pytest.mark.parametrize("seed", range(5))
def test_index_to_lps_matches_simpleitk_for_oblique_directions(seed):
    rng = np.random.default_rng(seed)
    g = Geometry(shape=(7, 11, 13), spacing=tuple(rng.uniform(0.3, 4.0, 3)),
                 origin=tuple(rng.uniform(-300, 300, 3)), direction=tuple(_rotation(rng).ravel()))
    img = _sitk_image(g)
    for idx in rng.uniform(-5, 15, size=(10, 3)):
        expect = img.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in idx))
        np.testing.assert_allclose(g.index_to_lps(idx), expect, atol=1e-9)
        np.testing.assert_allclose(g.lps_to_index(expect), idx, atol=1e-9)


def test_round_trips_on_random_points_vectorised_and_zyx():
    g = Geometry(shape=(40, 64, 64), spacing=(0.7, 0.9, 2.5), origin=(-102.1, -108.8, -32.8),
                 direction=tuple(_rotation(RNG).ravel()))
    idx = RNG.uniform(-10, 70, size=(500, 3))
    lps = g.index_to_lps(idx)
    assert lps.shape == (500, 3)
    np.testing.assert_allclose(g.lps_to_index(lps), idx, atol=1e-9)
    np.testing.assert_allclose(g.index_zyx_to_lps(idx[:, ::-1]), lps, atol=1e-12)
    np.testing.assert_allclose(g.lps_to_index_zyx(lps), idx[:, ::-1], atol=1e-9)


def test_uneven_offsets_are_used_inside_and_extrapolated_outside():
    offs = (0.0, 202.5, 203.75, 205.0)  # the MONAI uneven CT's real slice positions
    g = Geometry(shape=(4, 16, 16), spacing=(0.488281, 0.488281, 1.25),
                 origin=(-125.0, -128.1, -99.48), slice_offsets=offs)
    assert g.is_uneven
    for k, off in enumerate(offs):
        np.testing.assert_allclose(g.index_to_lps((3, 5, k)),
                                   (-125.0 + 3 * 0.488281, -128.1 + 5 * 0.488281, -99.48 + off))
    # half-way between slice 0 and 1 is half-way in mm, not 0.5 * 1.25 mm
    assert g.index_to_lps((0, 0, 0.5))[2] == pytest.approx(-99.48 + 101.25)
    # beyond the ends: extrapolated with the end steps
    assert g.index_to_lps((0, 0, -1))[2] == pytest.approx(-99.48 - 202.5)
    assert g.index_to_lps((0, 0, 4))[2] == pytest.approx(-99.48 + 206.25)
    idx = np.column_stack([RNG.uniform(0, 15, 200), RNG.uniform(0, 15, 200),
                           RNG.uniform(-2, 5, 200)])
    np.testing.assert_allclose(g.lps_to_index(g.index_to_lps(idx)), idx, atol=1e-9)


def test_uneven_offsets_on_an_oblique_stack_follow_the_z_column():
    d = _rotation(np.random.default_rng(3))
    offs = (0.0, 2.0, 5.0, 5.5, 12.0)
    g = Geometry(shape=(5, 8, 8), spacing=(1.0, 1.0, 2.0), origin=(10.0, 20.0, 30.0),
                 direction=tuple(d.ravel()), slice_offsets=offs)
    for k, off in enumerate(offs):
        np.testing.assert_allclose(g.index_to_lps((0, 0, k)), np.array([10, 20, 30]) + off * d[:, 2])


def test_offsets_must_increase():
    with pytest.raises(ValueError):
        Geometry(shape=(3, 4, 4), slice_offsets=(0.0, 2.0, 2.0))
    with pytest.raises(ValueError):
        Geometry(shape=(3, 4, 4), slice_offsets=(0.0, 2.0))  # one per slice


def test_affine_ras_round_trip_and_nibabel_agreement(shared_data):
    img = nib.load(shared_data / "totalseg/tests/reference_files/example_ct_sm.nii.gz")
    shape_zyx = img.shape[::-1]
    g = Geometry.from_affine_ras(img.affine, shape_zyx)
    np.testing.assert_allclose(g.affine_ras(), img.affine, atol=1e-6)
    ijk = RNG.uniform(0, 30, size=(20, 3))
    ras = nib.affines.apply_affine(img.affine, ijk)
    np.testing.assert_allclose(g.index_to_lps(ijk), ras * [-1, -1, 1], atol=1e-6)
    assert g.orientation_code() == "".join(nib.aff2axcodes(img.affine))


@pytest.mark.parametrize("seed", range(4))
def test_random_affines_round_trip(seed):
    rng = np.random.default_rng(100 + seed)
    g = Geometry(shape=(9, 10, 11), spacing=tuple(rng.uniform(0.5, 3, 3)),
                 origin=tuple(rng.uniform(-100, 100, 3)), direction=tuple(_rotation(rng).ravel()))
    back = Geometry.from_affine_ras(g.affine_ras(), g.shape)
    np.testing.assert_allclose(back.spacing, g.spacing, atol=1e-12)
    np.testing.assert_allclose(back.origin, g.origin, atol=1e-12)
    np.testing.assert_allclose(back.direction, g.direction, atol=1e-12)
    assert g.orientation_code() == "".join(nib.aff2axcodes(g.affine_ras()))


@pytest.mark.parametrize("direction, code", [
    ((1, 0, 0, 0, 1, 0, 0, 0, 1), "LPS"),
    ((-1, 0, 0, 0, -1, 0, 0, 0, 1), "RAS"),
    ((-1, 0, 0, 0, 1, 0, 0, 0, 1), "RPS"),
    ((0, 0, 1, 1, 0, 0, 0, -1, 0), "PIL"),  # x->P, y->I, z->L: a sagittal stack
    ((1, 0, 0, 0, 0, 1, 0, -1, 0), "LIP"),  # coronal stack, rows going down (inferior)
])
def test_orientation_codes(direction, code):
    assert Geometry(shape=(2, 2, 2), direction=direction).orientation_code() == code


def test_oblique_orientation_code_matches_the_real_toshiba_20_degree_series():
    # ImageOrientationPatient of dcm_qa_toshiba_oblique 10006_DTI_ALL_20d, normal by cross product
    row = np.array([0.88721967, 0.29733548, -0.35275051])
    col = np.array([-0.10480381, 0.87451601, 0.47353762])
    d = np.column_stack([row, col, np.cross(row, col)])
    g = Geometry(shape=(40, 64, 64), spacing=(3, 3, 3), direction=tuple(d.ravel()))
    assert g.is_orthonormal and g.tilt_degrees() == pytest.approx(0.0, abs=1e-3)
    assert g.orientation_code() == "".join(nib.aff2axcodes(g.affine_ras())) == "LPS"


def test_gantry_tilt_is_kept_as_a_sheared_direction():
    tilt = np.radians(15.0)
    z = np.array([0.0, np.sin(tilt), np.cos(tilt)])  # stacking leans towards P
    d = np.column_stack([[1, 0, 0], [0, 1, 0], z])
    g = Geometry(shape=(10, 32, 32), spacing=(0.5, 0.5, 2.0), direction=tuple(d.ravel()))
    assert not g.is_orthonormal
    assert g.tilt_degrees() == pytest.approx(15.0)
    assert g.orientation_code() == "LPS"
    np.testing.assert_allclose(g.index_to_lps((0, 0, 3)), 6.0 * z)
    back = Geometry.from_affine_ras(g.affine_ras(), g.shape)
    np.testing.assert_allclose(back.index_to_lps((4, 5, 6)), g.index_to_lps((4, 5, 6)), atol=1e-9)


def test_to_dict_and_bad_input():
    g = Geometry(shape=(3, 4, 5), spacing=(1, 2, 3), origin=(1, 2, 3),
                 slice_offsets=(0.0, 3.0, 7.0))
    d = g.to_dict()
    assert d["shape_zyx"] == [3, 4, 5] and d["spacing_xyz"] == [1.0, 2.0, 3.0]
    assert d["slice_offsets_mm"] == [0.0, 3.0, 7.0] and d["orientation"] == "LPS"
    assert g.size_xyz == (5, 4, 3)
    assert g.contains_index_zyx((2, 3, 4)) and not g.contains_index_zyx((3, 0, 0))
    with pytest.raises(ValueError):
        Geometry(shape=(3, 4))
    with pytest.raises(ValueError):
        Geometry(shape=(3, 4, 5), spacing=(1, 0, 1))
    with pytest.raises(ValueError):
        Geometry(shape=(3, 4, 5), direction=(1, 0, 0, 1, 0, 0, 0, 0, 1))
