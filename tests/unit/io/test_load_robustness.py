"""Bad input gives a clear LoadError, never another exception, a hang or a runaway
allocation: decoder panics, huge sizes and frame counts, non-finite geometry and rescale,
garbage in minor tags, NaN in a NIfTI sform (real files with one header value damaged)."""
import json
import math
import shutil
import struct

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.io import budget
from medviewer.io.catalogue import SeriesEntry
from medviewer.io.discover import scan_paths
from medviewer.io.load import LoadError, MemoryBudgetError, load_series
from medviewer.io.volume_files import read_volume_file

from _dicom_data import CHEST, DATA, chest_files
from fuzz_mutants import panicking_rle, with_value
from fuzz_run import run_files

RLE_SMALL = get_testdata_file("MR_small_RLE.dcm")  # 7.8 kB, 64 x 64 RLE
RLE_2FRAME = get_testdata_file("SC_rgb_rle_2frame.dcm")
JPEG = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")
PALETTE = get_testdata_file("OT-PAL-8-face.dcm")
NIFTI = DATA / "monai_testing_data" / "tests" / "testing_data" / "anatomical.nii"


def _load_file(path):
    return load_series(SeriesEntry(key=str(path), kind="dicom", paths=[str(path)]))


def test_rle_decoder_panic_becomes_a_load_error_naming_the_file(tmp_path):
    path = panicking_rle(tmp_path)
    with pytest.raises(LoadError, match="panic_rle.dcm") as info:
        _load_file(path)
    cause = info.value.__cause__
    assert cause is not None and not isinstance(cause, Exception)  # it was a panic
    assert type(cause).__name__ == "PanicException"
    assert "cannot decode pixel data (RLE Lossless)" in str(info.value)


def test_huge_rows_columns_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setenv(budget.ENV, "256")
    path = with_value(RLE_SMALL, tmp_path / "huge.dcm", "Rows", struct.pack("<H", 65535))
    path = with_value(path, path, "Columns", struct.pack("<H", 65535))
    assert path.stat().st_size < 8000
    with pytest.raises(MemoryBudgetError) as info:
        _load_file(path)
    msg = str(info.value)
    assert "huge.dcm" in msg and "65535 x 65535 x 1 int16 volume (8.0 GiB)" in msg
    assert "256.0 MiB" in msg and budget.ENV in msg


def test_budget_from_environment(monkeypatch):
    monkeypatch.setenv(budget.ENV, "512")
    assert budget.budget_bytes() == 512 << 20
    monkeypatch.setenv(budget.ENV, "25%")
    assert abs(budget.budget_bytes() - budget.available_bytes() // 4) < (64 << 20)
    monkeypatch.delenv(budget.ENV)
    default = budget.budget_bytes()
    assert budget.MIN_BUDGET <= default <= budget.available_bytes()
    monkeypatch.setenv(budget.ENV, "lots")  # unreadable: the default
    assert abs(budget.budget_bytes() - default) < (256 << 20)


@pytest.mark.parametrize("frames, expected", [
    ("2147483647", "holds 2 fragment"), ("3", "holds 2 fragment"),
    ("-1", "not a positive whole number"), ("0", "not a positive whole number"),
    ("nan", "not a positive whole number")])
def test_number_of_frames_is_checked_against_the_compressed_data(tmp_path, frames, expected):
    path = with_value(RLE_2FRAME, tmp_path / "frames.dcm", "NumberOfFrames", frames)
    with pytest.raises(LoadError, match=expected):
        _load_file(path)
    cat = scan_paths([tmp_path])  # the scan refuses what it can see from the header alone
    if "fragment" not in expected:
        assert cat.skipped and expected in cat.skipped[0].reason


def test_compressed_frame_larger_than_the_header_is_refused_before_decoding(tmp_path):
    raw = bytearray(open(JPEG, "rb").read())
    sof = raw.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", raw, sof + 5, 0xFFFF, 0xFFFF)  # frame height, width
    path = tmp_path / "big_sof.dcm"
    path.write_bytes(bytes(raw))
    with pytest.raises(LoadError, match="declares 65535 x 65535 pixels but the header says"):
        _load_file(path)


def test_non_finite_position_is_a_clear_error_naming_the_file(tmp_path):
    files = chest_files()[40:43]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    with_value(files[1], tmp_path / files[1].name, "ImagePositionPatient", "0\\nan\\0")
    cat = scan_paths([tmp_path])
    with pytest.raises(LoadError, match=f"{files[1].name}: ImagePositionPatient .* not a finite"):
        load_series(cat.series[0])


@pytest.mark.parametrize("value", ["nan\\0.5", "inf\\inf", "-1\\0.5"])
def test_bad_pixel_spacing_falls_back_with_a_warning(tmp_path, value):
    path = with_value(chest_files()[0], tmp_path / "sp.dcm", "PixelSpacing", value)
    vol = _load_file(path)
    assert vol.geometry.spacing[:2] == (1.0, 1.0)
    assert any("Pixel spacing unknown" in w for w in vol.warnings)
    assert vol.meta["spacing_unknown"] is True


@pytest.mark.parametrize("kw, value", [("SpacingBetweenSlices", "inf"),
                                       ("SliceThickness", "nan"),
                                       ("WindowCenter", "nan"), ("WindowWidth", "-inf"),
                                       ("GantryDetectorTilt", "nan")])
def test_non_finite_minor_geometry_values_are_ignored(tmp_path, kw, value):
    path = with_value(chest_files()[0], tmp_path / "minor.dcm", kw, value)
    vol = _load_file(path)
    g = vol.geometry
    assert all(math.isfinite(v) for v in g.spacing + g.origin + g.direction)
    w = vol.default_window()
    assert math.isfinite(w.center) and math.isfinite(w.width) and w.width > 0


@pytest.mark.parametrize("slope, intercept, expected", [
    ("1e308", "0", "out of range"), ("nan", "0", "not finite"), ("1", "inf", "not finite"),
    ("1", "1e20", None), ("3e9", "0", None)])
def test_rescale_values(tmp_path, slope, intercept, expected):
    path = with_value(chest_files()[0], tmp_path / "r.dcm", "RescaleSlope", slope)
    path = with_value(path, path, "RescaleIntercept", intercept)
    if expected:
        with pytest.raises(LoadError, match=expected):
            _load_file(path)
        return
    vol = _load_file(path)  # large but finite: float32, no integer overflow
    assert vol.array.dtype == np.float32 and np.all(np.isfinite(vol.array))
    raw = pydicom.dcmread(chest_files()[0]).pixel_array.astype(np.float64)
    assert np.allclose(vol.array[0], raw * float(slope) + float(intercept), rtol=1e-6)


@pytest.mark.parametrize("kw", ["InstanceNumber", "AcquisitionNumber"])
def test_garbage_minor_numbers_never_sink_a_file(tmp_path, kw):
    files = chest_files()[40:43]
    intact = load_series(scan_paths(files).series[0])
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    with_value(files[0], tmp_path / files[0].name, kw, "nan")
    with_value(files[2], tmp_path / files[2].name, kw, "inf")
    cat = scan_paths([tmp_path])
    assert not cat.skipped
    vol = load_series(cat.series[0])
    names = [p.rsplit("/", 1)[-1] for p in vol.source_paths]
    assert names == [p.rsplit("/", 1)[-1] for p in intact.source_paths]  # sorted by position
    assert np.array_equal(vol.array, intact.array) and vol.geometry == intact.geometry
    assert any(kw in w and "not a number" in w for w in vol.warnings)


def test_orientation_with_equal_row_and_column_falls_back_with_a_warning(tmp_path):
    path = with_value(chest_files()[0], tmp_path / "iop.dcm", "ImageOrientationPatient",
                      "1\\0\\0\\1\\0\\0")
    vol = _load_file(path)
    assert any("Invalid image orientation" in w for w in vol.warnings)
    path = with_value(chest_files()[0], tmp_path / "iop2.dcm", "ImageOrientationPatient",
                      "nan\\0\\0\\0\\1\\0")
    vol = _load_file(path)
    assert all(math.isfinite(v) for v in vol.geometry.direction)


def test_palette_without_its_lookup_table_is_a_load_error(tmp_path):
    ds = pydicom.dcmread(PALETTE, force=True)
    del ds["RedPaletteColorLookupTableData"]
    path = tmp_path / "pal.dcm"
    ds.save_as(path)
    with pytest.raises(LoadError, match="pal.dcm"):
        _load_file(path)


def _nifti_with(tmp_path, name, **fields):
    img = nib.load(str(NIFTI))
    hdr = img.header.copy()
    for k, v in fields.items():
        hdr[k] = v
    raw = bytearray(open(NIFTI, "rb").read())
    raw[:348] = hdr.binaryblock  # the same header bytes, with the damaged fields
    path = tmp_path / name
    path.write_bytes(bytes(raw))
    return path


def test_infinite_sform_does_not_hang_simpleitk(tmp_path):
    """SimpleITK spends minutes on an inf in srow_z; checked in a worker with a 10 s limit."""
    bad = _nifti_with(tmp_path, "inf_sform.nii", srow_z=[3.4e38, np.inf, 2.0, -16.0])
    report = run_files([bad], timeout=10.0, workers=1)
    (o,) = report.outcomes
    assert o.status == "error", o
    assert "inf_sform.nii" in o.msg and "finite" in o.msg


def test_nan_in_an_unused_sform_loads_with_nibabel(tmp_path):
    good = read_volume_file(NIFTI)
    path = _nifti_with(tmp_path, "unused.nii", sform_code=0, srow_x=[np.nan, 0, 0, 0])
    vol = read_volume_file(path)
    assert any("read with nibabel" in w and "srow_x" in w for w in vol.warnings)
    assert np.array_equal(vol.array, good.array)
    assert all(math.isfinite(v) for v in vol.geometry.origin + vol.geometry.spacing)


def test_nifti_dims_beyond_the_budget_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv(budget.ENV, "256")
    path = _nifti_with(tmp_path, "dims.nii", dim=[3, 30000, 30000, 30000, 1, 1, 1, 1])
    with pytest.raises(MemoryBudgetError, match=r"dims.nii: a 30000 x 30000 x 30000"):
        read_volume_file(path)


def test_info_json_never_has_nan(tmp_path):
    """What `medviewer info --json` prints for every series is valid JSON (no NaN)."""
    from medviewer.cli.info import _series_record

    path = with_value(chest_files()[0], tmp_path / "nan.dcm", "PixelSpacing", "nan\\nan")
    path = with_value(path, path, "SliceThickness", "nan")
    entry = scan_paths([path]).series[0]
    rec = _series_record(0, entry, load_series(entry))
    json.loads(json.dumps(rec, allow_nan=False))


@pytest.mark.skipif(not CHEST.is_dir(), reason="shared data missing")
def test_real_chest_ct_still_loads_the_same():
    cat = scan_paths([CHEST])
    vol = load_series(cat.series[0])
    assert vol.shape == (100, 512, 512) and vol.array.dtype == np.int16
    assert not any("not a number" in w for w in vol.warnings)


def test_the_progress_callbacks_own_exception_passes_through_unchanged():
    """A job's cancellation (raised by its progress callback) is not turned into a LoadError."""
    from medviewer.jobs import CancelToken, Cancelled, Reporter

    token = CancelToken()
    calls = []

    def progress(p):
        calls.append(p.done)
        if len(calls) == 3:
            token.cancel()

    entry = scan_paths(chest_files()[:10]).series[0]
    with pytest.raises(Cancelled):
        load_series(entry, Reporter(progress, token))
    assert len(calls) == 3
