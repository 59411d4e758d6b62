"""Label maps from NIfTI/NRRD onto real images: exact grids load as stored, mismatches raise a
clear GeometryMismatch or resample (nearest neighbour) when asked; writing round-trips.
References: SimpleITK and nibabel reading the same real files."""
import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core.geometry import Geometry
from medviewer.io.labels_io import (GeometryMismatch, read_labelmap, to_label_dtype,
                                    write_labelmap)
from medviewer.io.load import open_first

TS = "totalseg/tests/reference_files"


def _sitk_array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def ct_sm(shared_data):
    return open_first([shared_data / TS / "example_ct_sm.nii.gz"])


def test_totalseg_labels_on_their_ct_load_exactly(shared_data, ct_sm):
    seg = shared_data / TS / "example_seg.nii.gz"
    labels, table, warnings = read_labelmap(seg, ct_sm.geometry)
    ref = _sitk_array(seg)
    assert warnings == [] and table is None
    assert labels.dtype == np.uint8 and labels.shape == ct_sm.shape == (30, 101, 122)
    assert np.array_equal(labels, ref)  # every label value preserved, voxel for voxel
    assert len(np.unique(labels)) > 20


def test_mismatching_grid_raises_with_the_differences(shared_data):
    seg = shared_data / TS / "example_seg.nii.gz"
    mr = open_first([shared_data / TS / "example_mr_sm.nii.gz"])
    with pytest.raises(GeometryMismatch) as info:
        read_labelmap(seg, mr.geometry)
    msg = str(info.value)
    assert "shape (30, 101, 122) vs (20, 91, 117)" in msg
    assert "origin" in msg and "orientation RAS vs LPS" in msg
    assert "resample=True" in msg and "nearest neighbour" in msg
    chest = Geometry(shape=(100, 512, 512), spacing=(0.898438, 0.898438, 2.5),
                     origin=(-228.8, -220.0, -236.5))
    with pytest.raises(GeometryMismatch, match=r"spacing \(3, 3, 3\) vs \(0\.8984"):
        read_labelmap(seg, chest)


def test_resample_onto_a_larger_grid_keeps_every_voxel(shared_data):
    """example_ct.nii.gz has the same origin/spacing/orientation and 112 instead of 30 slices."""
    seg = shared_data / TS / "example_seg.nii.gz"
    big = open_first([shared_data / TS / "example_ct.nii.gz"])
    with pytest.raises(GeometryMismatch, match="shape"):
        read_labelmap(seg, big.geometry)
    labels, _, warnings = read_labelmap(seg, big.geometry, resample=True)
    assert labels.shape == (112, 101, 122) and labels.dtype == np.uint8
    assert np.array_equal(labels[:30], _sitk_array(seg))
    assert not labels[30:].any()
    assert any("resampled" in w for w in warnings)


def _centroid_lps(labels, geometry, value):
    idx = np.argwhere(labels == value).mean(axis=0)  # (z, y, x)
    return geometry.index_zyx_to_lps(idx)


def test_resample_onto_another_orientation_and_spacing_keeps_organ_centroids(shared_data, ct_sm):
    seg = shared_data / TS / "example_seg.nii.gz"
    src, _, _ = read_labelmap(seg, ct_sm.geometry)
    # an LPS-ordered grid (the file is RAS-ordered) with other spacings, shifted off-voxel
    corner = ct_sm.geometry.index_to_lps((121, 100, 0))  # most right/anterior/inferior voxel
    # covering the whole source extent (half a source voxel beyond its centres) and more
    target = Geometry(shape=(44, 126, 186), spacing=(2.0, 2.5, 2.2),
                      origin=tuple(corner + np.array([-2.3, -1.9, -2.6])))
    labels, _, warnings = read_labelmap(seg, target, resample=True)
    assert labels.shape == (44, 126, 186)
    assert "orientation RAS vs LPS" in warnings[0]
    counts = np.bincount(src.ravel())
    big = [v for v in range(1, len(counts)) if counts[v] > 300]
    assert len(big) >= 5
    for v in big:
        d = np.linalg.norm(_centroid_lps(labels, target, v)
                           - _centroid_lps(src, ct_sm.geometry, v))
        assert d < 3.0, (v, d)  # within one source voxel (3 mm)
        # volume in mm^3 is kept to within a few percent
        vol_src = counts[v] * 27.0
        vol_dst = np.count_nonzero(labels == v) * 2.0 * 2.5 * 2.2
        assert abs(vol_dst - vol_src) < 0.08 * vol_src, v


@pytest.mark.parametrize("image,label", [
    ("brain1_image.nrrd", "brain1_label.nrrd"),
    ("breast1_image.nrrd", "breast1_label.nrrd"),
    ("prostate_phantom_subvolume.nrrd", "prostate_phantom_subvolume-label.nrrd"),
])
def test_pyradiomics_label_pairs_load_onto_their_images(shared_data, image, label):
    folder = shared_data / "pyradiomics_data" / "data"
    vol = open_first([folder / image])
    labels, table, warnings = read_labelmap(folder / label, vol.geometry)
    ref = _sitk_array(folder / label)
    assert warnings == [] and table is None
    assert labels.shape == vol.shape and labels.dtype == np.uint8
    assert np.array_equal(labels, ref)
    assert set(np.unique(labels)) == set(np.unique(ref)) and labels.any()


def test_an_image_is_not_a_label_map(shared_data, ct_sm):
    with pytest.raises(ValueError, match="negative values"):
        read_labelmap(shared_data / TS / "example_ct_sm.nii.gz", ct_sm.geometry)


def test_to_label_dtype():
    assert to_label_dtype(np.array([0.0, 3.0, 7.0], dtype=np.float32)).dtype == np.uint8
    assert to_label_dtype(np.array([0, 300], dtype=np.int32)).dtype == np.uint16
    with pytest.raises(ValueError, match="non-integer"):
        to_label_dtype(np.array([0.5, 1.0]))


TABLE = {"labels": [{"value": 1, "name": "Peripheral zone", "color": [250, 10, 20]},
                    {"value": 7, "name": "Transition zone", "color": [0, 120, 255]}]}


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_write_then_read_round_trips(shared_data, tmp_path, suffix):
    folder = shared_data / "pyradiomics_data" / "data"
    vol = open_first([folder / "prostate_phantom_subvolume.nrrd"])
    labels, _, _ = read_labelmap(folder / "prostate_phantom_subvolume-label.nrrd", vol.geometry)
    out = write_labelmap(labels, vol.geometry, tmp_path / f"lab{suffix}", TABLE)
    assert sorted(os.listdir(tmp_path)) == [f"lab{suffix}"]  # no temporary file left
    back, table, warnings = read_labelmap(out, vol.geometry)
    assert warnings == [] and np.array_equal(back, labels)
    img = sitk.ReadImage(str(out))
    np.testing.assert_allclose(img.GetOrigin(), vol.geometry.origin, atol=1e-4)
    np.testing.assert_allclose(img.GetSpacing(), vol.geometry.spacing, atol=1e-6)
    np.testing.assert_allclose(img.GetDirection(), vol.geometry.direction, atol=1e-6)
    if suffix == ".nrrd":
        assert [(e["value"], e["name"], e["color"]) for e in table["labels"]] == [
            (1, "Peripheral zone", [250, 10, 20]), (7, "Transition zone", [0, 120, 255])]
    else:
        np.testing.assert_allclose(nib.load(str(out)).affine, vol.geometry.affine_ras(),
                                   atol=1e-4)


def test_nrrd_keeps_values_above_255_and_writes_atomically(tmp_path, ct_sm, shared_data):
    labels, _, _ = read_labelmap(shared_data / TS / "example_seg.nii.gz", ct_sm.geometry)
    wide = labels.astype(np.uint16) * 300
    path = tmp_path / "wide.nrrd"
    write_labelmap(wide, ct_sm.geometry, path)
    back, _, _ = read_labelmap(path, ct_sm.geometry)
    assert back.dtype == np.uint16 and np.array_equal(back, wide)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="does not match"):
        write_labelmap(wide[:10], ct_sm.geometry, path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["wide.nrrd"]
    with pytest.raises(ValueError, match=r"\.nii, \.nii\.gz or \.nrrd"):
        write_labelmap(labels, ct_sm.geometry, tmp_path / "x.png")


def test_layered_nrrd_gives_one_label_per_segment(shared_data, tmp_path):
    """A 3D Slicer style layered segmentation NRRD (2 components, Segment keys): segments
    become labels 1..n in header order, named and coloured from the header."""
    folder = shared_data / "pyradiomics_data" / "data"
    vol = open_first([folder / "prostate_phantom_subvolume.nrrd"])
    ref = _sitk_array(folder / "prostate_phantom_subvolume-label.nrrd")
    layer0 = (ref == 1).astype(np.uint8)
    layer1 = np.where(ref == 7, 1, np.where(ref == 8, 2, 0)).astype(np.uint8)
    img = sitk.GetImageFromArray(np.stack([layer0, layer1], axis=-1), isVector=True)
    img.SetSpacing(vol.geometry.spacing)
    img.SetOrigin(vol.geometry.origin)
    img.SetDirection(vol.geometry.direction)
    for i, (name, layer, value) in enumerate([("PZ", 0, 1), ("TZ", 1, 1), ("Urethra", 1, 2)]):
        img.SetMetaData(f"Segment{i}_ID", f"Segment_{i}")
        img.SetMetaData(f"Segment{i}_Name", name)
        img.SetMetaData(f"Segment{i}_Color", "1 0.5 0")
        img.SetMetaData(f"Segment{i}_Layer", str(layer))
        img.SetMetaData(f"Segment{i}_LabelValue", str(value))
    path = tmp_path / "layered.seg.nrrd"
    sitk.WriteImage(img, str(path), True)
    labels, table, warnings = read_labelmap(path, vol.geometry)
    assert warnings == []
    assert np.array_equal(labels == 1, ref == 1) and np.array_equal(labels == 2, ref == 7)
    assert np.array_equal(labels == 3, ref == 8) and not labels[ref == 9].any()
    assert [(e["value"], e["name"], e["color"]) for e in table["labels"]] == [
        (1, "PZ", [255, 128, 0]), (2, "TZ", [255, 128, 0]), (3, "Urethra", [255, 128, 0])]


def test_label_table_objects_round_trip_through_nrrd(tmp_path, ct_sm, shared_data):
    from medviewer.core.labels import LabelTable

    labels, _, _ = read_labelmap(shared_data / TS / "example_seg.nii.gz", ct_sm.geometry)
    table = LabelTable.from_dict(TABLE)
    path = write_labelmap(labels, ct_sm.geometry, tmp_path / "t.nrrd", table)
    _, back, _ = read_labelmap(path, ct_sm.geometry)
    assert LabelTable.from_dict(back).to_dict() == table.to_dict()
