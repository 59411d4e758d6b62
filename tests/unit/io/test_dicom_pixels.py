"""DICOM pixel decoding on real files: transfer syntaxes, 12-bit masking, colour, MONOCHROME1,
enhanced multi-frame, truncation."""
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.io.catalogue import SeriesEntry
from medviewer.io.discover import scan_paths
from medviewer.io.load import LoadError, load_series

from _dicom_data import CHEST, QA_12BIT, QA_ENH, QA_TS, chest_files


def _load_file(path):
    """Load one file on its own (as a one-file series)."""
    return load_series(SeriesEntry(key=str(path), kind="dicom", paths=[str(path)]))


@pytest.mark.skipif(not QA_TS.is_dir(), reason="shared data missing")
def test_all_transfer_syntaxes_decode_identically():
    files = sorted(QA_TS.glob("*.dcm"))
    assert len(files) == 9
    syntaxes = {str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                for f in files}
    assert len(syntaxes) >= 7
    ref = _load_file(files[0]).array
    assert ref.shape == (1, 384, 384) and ref.dtype == np.uint16 and ref.max() > 0
    for f in files[1:]:
        vol = _load_file(f)
        # all of these syntaxes are lossless: identical pixels
        assert vol.array.dtype == ref.dtype
        assert np.array_equal(vol.array, ref), f.name


@pytest.mark.skipif(not QA_12BIT.is_dir(), reason="shared data missing")
@pytest.mark.parametrize("name,signed", [("12bitUnsigned.dcm", False),
                                         ("12bitUnsigned_0x0F0F.dcm", False),
                                         ("12bitSigned_0x0F0F.dcm", True)])
def test_12bit_high_bits_masked(name, signed):
    path = QA_12BIT / name
    ds = pydicom.dcmread(path)
    raw = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns).astype(np.int32)
    low = raw & 0x0FFF
    expected = np.where(low >= 2048, low - 4096, low) if signed else low
    vol = _load_file(path)
    assert vol.array.dtype == (np.int16 if signed else np.uint16)
    assert np.array_equal(vol.array[0].astype(np.int32), expected)
    if signed:
        assert vol.array.min() >= -2048 and vol.array.max() <= 2047
    else:
        assert vol.array.min() >= 0 and vol.array.max() <= 4095
    if "0x0F0F" in name:  # the README's stripes: 0x0F0F and 0xFFFF
        stripes = {-241, -1} if signed else {3855, 4095}
        assert stripes <= set(np.unique(vol.array).tolist())
    if (raw > 0x0FFF).any():
        assert (vol.array != raw.astype(vol.array.dtype)).any()  # the high bits were dirty


@pytest.mark.skipif(not QA_ENH.is_dir(), reason="shared data missing")
def test_enhanced_philips_per_frame_positions_and_rescale():
    path = QA_ENH / "Philips" / "IM_0027_fMAP.dcm"
    ds = pydicom.dcmread(path)
    vol = _load_file(path)
    assert vol.array.shape == (32, 64, 64) and vol.array.dtype == np.float32
    assert any("2 volumes" in w for w in vol.warnings)
    frames = ds.PerFrameFunctionalGroupsSequence
    for k in (0, 7, 31):
        ipp = [float(v) for v in frames[k].PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(vol.geometry.index_to_lps((0, 0, k)), ipp, atol=1e-3)
        pvt = frames[k].PixelValueTransformationSequence[0]
        expected = ds.pixel_array[k] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
        assert np.allclose(vol.array[k], expected, rtol=1e-5)
    assert np.isclose(vol.geometry.spacing[2], 4.0, atol=1e-3)


@pytest.mark.skipif(not QA_ENH.is_dir(), reason="shared data missing")
def test_enhanced_siemens_4d_loads_first_volume():
    folder = QA_ENH / "Siemens" / "XA10"
    cat = scan_paths([folder])
    assert len(cat.series) == 1 and cat.series[0].n_frames == 24
    vol = load_series(cat.series[0])
    assert vol.array.shape == (6, 64, 64)
    assert any("4 volumes" in w for w in vol.warnings)
    first = pydicom.dcmread(folder / "6_1.dcm")
    assert np.array_equal(vol.array, first.pixel_array)  # temporal index 1, slice order kept
    assert np.isclose(vol.geometry.spacing[2], 2.4, atol=1e-3)


def test_enhanced_ct_shared_groups_from_pydicom():
    """eCT_Supplemental: positions per frame, orientation/spacing/rescale in shared groups."""
    path = get_testdata_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    vol = _load_file(path)
    assert vol.array.shape == (2, 512, 512) and vol.array.dtype == np.int16
    assert vol.units == "HU"
    assert np.isclose(vol.geometry.spacing[2], 10.0)
    pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    for j, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ipp = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        k = vol.geometry.lps_to_index(ipp)  # where that frame sits in the volume
        assert np.allclose(k, np.round(k), atol=1e-4) and np.allclose(k[:2], 0, atol=1e-4)
        expected = ds.pixel_array[j].astype(np.int32) + int(float(pvt.RescaleIntercept))
        assert np.array_equal(vol.array[int(round(k[2]))], expected)


def test_enhanced_mr_without_functional_groups_stacks_frames():
    vol = _load_file(get_testdata_file("emri_small.dcm"))
    assert vol.array.shape == (10, 64, 64)
    assert any("no patient positions" in w for w in vol.warnings)


def test_monochrome1_sets_invert_and_keeps_raw_values():
    path = get_testdata_file("RG1_UNCI.dcm")
    vol = _load_file(path)
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert vol.invert is True
    assert np.array_equal(vol.array[0], ds.pixel_array)  # not inverted in the data


@pytest.mark.parametrize("name", ["examples_palette.dcm", "OBXXXX1A.dcm"])
def test_palette_colour_becomes_rgb_uint8(name):
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    vol = _load_file(path)
    assert vol.is_rgb and vol.array.dtype == np.uint8
    from pydicom.pixels import apply_color_lut
    lut = apply_color_lut(ds.pixel_array, ds)
    if lut.dtype != np.uint8:
        lut = (lut >> 8).astype(np.uint8)
    assert np.array_equal(vol.array[0], lut)
    assert len(np.unique(vol.array[0].reshape(-1, 3), axis=0)) > 10


def test_rgb_and_ybr_agree():
    rgb = _load_file(get_testdata_file("SC_rgb.dcm"))
    assert rgb.is_rgb and rgb.array.shape == (1, 100, 100, 3)
    for name, tol in [("SC_ybr_full_uncompressed.dcm", 8),
                      ("SC_ybr_full_422_uncompressed.dcm", 8),
                      ("SC_rgb_jpeg_dcmtk.dcm", 10),  # YBR_FULL JPEG baseline (lossy)
                      ("SC_rgb_16bit.dcm", 1)]:
        vol = _load_file(get_testdata_file(name))
        assert vol.is_rgb and vol.array.dtype == np.uint8, name
        diff = np.abs(vol.array.astype(int) - rgb.array.astype(int)).max()
        assert diff <= tol, (name, diff)


@pytest.mark.skipif(not CHEST.is_dir(), reason="shared data missing")
def test_truncated_file_clear_error_and_folder_still_loads(tmp_path):
    files = chest_files()[:5]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    bad = tmp_path / files[2].name
    data = bad.read_bytes()
    bad.write_bytes(data[:-1000])
    with pytest.raises(LoadError, match=r"pixel data truncated: expected 524288 bytes, found 523288"):
        _load_file(bad)
    cat = scan_paths([tmp_path])
    assert [s.path for s in cat.skipped] == [str(bad)]
    assert "pixel data truncated" in cat.skipped[0].reason
    vol = load_series(cat.series[0])
    assert vol.array.shape == (4, 512, 512)
    assert str(bad) not in vol.source_paths


def test_truncated_compressed_file_gives_load_error():
    with pytest.raises(LoadError, match="truncated"):
        _load_file(get_testdata_file("emri_small_jpeg_2k_lossless_too_short.dcm"))
    with pytest.raises(LoadError, match="truncated"):
        _load_file(get_testdata_file("MR_truncated.dcm"))
