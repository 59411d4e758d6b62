"""DICOM series geometry on real data: spacing from positions, gaps, uneven, tilt, oblique."""
import numpy as np
import pydicom
import pytest

from medviewer.io.discover import scan_paths
from medviewer.io.load import load_series

from _dicom_data import CHEST, MONAI_CT, OBLIQUE, TOTALSEG_DICOM, chest_files

pytestmark = pytest.mark.skipif(not CHEST.is_dir(), reason="shared data missing")


def _load_only_series(paths):
    cat = scan_paths(paths)
    assert len(cat.series) == 1, [e.key for e in cat.series]
    return cat.series[0], load_series(cat.series[0])


def test_chest_ct_shape_dtype_spacing_and_hu():
    entry, vol = _load_only_series([CHEST])
    assert vol.array.dtype == np.int16
    assert vol.array.shape == (100, 512, 512)
    assert np.allclose(vol.geometry.spacing, (0.898438, 0.898438, 2.5), atol=1e-3)
    assert vol.geometry.slice_offsets is None and vol.warnings == []
    assert vol.units == "HU" and vol.modality == "CT"
    assert vol.window is not None and vol.window.width > 0
    assert vol.meta["SeriesInstanceUID"] == entry.series_uid
    assert vol.meta["BitsStored"] == "16"
    # a known voxel equals pydicom's pixel_array * slope + intercept for that slice's file
    z, y, x = 37, 300, 211
    ds = pydicom.dcmread(vol.source_paths[z])
    expected = ds.pixel_array[y, x] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert vol.array[z, y, x] == expected
    # the slice's patient position is where the geometry says slice z is
    assert np.allclose(vol.geometry.index_zyx_to_lps((z, 0, 0)),
                       [float(v) for v in ds.ImagePositionPatient], atol=1e-3)
    # sorted along the normal: positions increase along the z direction column
    z_dir = vol.geometry.direction_matrix[:, 2]
    first = np.array(pydicom.dcmread(vol.source_paths[0], stop_before_pixels=True)
                     .ImagePositionPatient, dtype=float)
    last = np.array(pydicom.dcmread(vol.source_paths[-1], stop_before_pixels=True)
                    .ImagePositionPatient, dtype=float)
    assert np.dot(last - first, z_dir) > 0


def test_totalseg_blank_uids_group_into_one_series():
    files = sorted(TOTALSEG_DICOM.iterdir())
    assert pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID == ""
    entry, vol = _load_only_series([TOTALSEG_DICOM])
    assert entry.n_images == 20 and entry.key.startswith("nouid-")
    assert vol.array.shape == (20, 512, 512)
    assert entry.key == scan_paths([TOTALSEG_DICOM]).series[0].key  # stable across scans


def test_monai_uneven_series_keeps_true_offsets():
    entry, vol = _load_only_series([MONAI_CT])
    ipp_z = sorted(float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
                   for p in MONAI_CT.iterdir())
    assert vol.geometry.slice_offsets is not None
    assert np.allclose(vol.geometry.slice_offsets, np.array(ipp_z) - ipp_z[0], atol=1e-4)
    for k, z in enumerate(ipp_z):
        assert np.isclose(vol.geometry.index_to_lps((0, 0, k))[2], z, atol=1e-4)
    text = " ".join(vol.warnings)
    assert "Uneven slice spacing" in text and "1.25" in text and "202.5" in text


def test_missing_slice_detected_and_offsets_kept():
    files = chest_files()
    # find the file at sorted position 50 and leave it out
    _, full = _load_only_series([CHEST])
    dropped = full.source_paths[50]
    entry, vol = _load_only_series([f for f in files if str(f) != dropped])
    assert vol.array.shape[0] == 99
    assert vol.geometry.slice_offsets is not None
    steps = np.diff(vol.geometry.slice_offsets)
    assert np.isclose(steps.max(), 5.0, atol=1e-3) and np.isclose(np.median(steps), 2.5)
    assert any("Missing slices" in w for w in vol.warnings)
    assert not any("Uneven" in w for w in vol.warnings)


def test_gantry_tilt_detected_on_sheared_copy(tmp_path):
    files = [f for f in chest_files()][:12]
    tilt_deg = 15.0
    positions = []
    for f in files:
        ds = pydicom.dcmread(f)
        positions.append((f, ds))
    positions.sort(key=lambda t: float(t[1].ImagePositionPatient[2]))
    z0 = float(positions[0][1].ImagePositionPatient[2])
    for i, (f, ds) in enumerate(positions):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + (z - z0) * np.tan(np.radians(tilt_deg)), z]
        ds.GantryDetectorTilt = tilt_deg
        ds.save_as(tmp_path / f"s{i:02d}.dcm")
    entry, vol = _load_only_series([tmp_path])
    assert np.isclose(vol.geometry.tilt_degrees(), tilt_deg, atol=0.01)
    assert not vol.geometry.is_orthonormal
    z_col = vol.geometry.direction_matrix[:, 2]
    expected = np.array([0.0, np.tan(np.radians(tilt_deg)), 1.0])
    assert np.allclose(z_col, expected / np.linalg.norm(expected), atol=1e-6)
    assert any("Gantry tilt" in w for w in vol.warnings)
    # every slice's origin maps back to its own (sheared) IPP
    for k in (0, 5, 11):
        ipp = pydicom.dcmread(vol.source_paths[k], stop_before_pixels=True).ImagePositionPatient
        assert np.allclose(vol.geometry.index_to_lps((0, 0, k)), [float(v) for v in ipp],
                           atol=1e-3)


def test_oblique_mr_direction_matches_iop_and_normal():
    entry, vol = _load_only_series([OBLIQUE])
    ds = pydicom.dcmread(vol.source_paths[0], stop_before_pixels=True)
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    d = vol.geometry.direction_matrix
    assert np.allclose(d[:, 0], iop[:3], atol=1e-6)
    assert np.allclose(d[:, 1], iop[3:], atol=1e-6)
    normal = np.cross(iop[:3], iop[3:])
    assert np.allclose(d[:, 2], normal / np.linalg.norm(normal), atol=1e-6)
    assert vol.array.shape == (40, 64, 64)
    assert np.allclose(vol.geometry.origin, [float(v) for v in ds.ImagePositionPatient])
    assert vol.warnings == []
