"""The fast header parser gives exactly the pydicom path's FileHeader, or declines.

Every file under ../shared/data and every pydicom test file is indexed both ways; files built
from a real chest CT slice check the cases the real data may not hold (character sets,
nested undefined-length sequences with implicit-VR items, encapsulated values in items,
truncation, functional groups)."""
import dataclasses
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medviewer.io.dicom_index import index_file
from medviewer.io.discover import _data_file_of, _is_volume_file, scan_paths
from medviewer.io.load import load_series

from _dicom_data import CHEST, DATA, QA_ENH, chest_files


def _all_files() -> list:
    files = [p for p in sorted(DATA.rglob("*")) if p.is_file()]
    files += [Path(f) for f in get_testdata_files() if Path(f).is_file()]
    # as the scan does: volume files and their raw data files never reach index_file
    return [p for p in files if not _is_volume_file(p) and not _data_file_of(p)]


def _both_ways(path) -> tuple:
    """(fast-path result or None when it declined, pydicom-path result or its exception)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = index_file(path, use_fast=False)
        except Exception as exc:  # noqa: BLE001 - the default path must raise alike
            ref = exc
        try:
            got = index_file(path)
        except Exception as exc:  # noqa: BLE001
            got = exc
    if isinstance(ref, Exception):
        assert isinstance(got, type(ref)), f"{path}: pydicom path raised {ref!r}, got {got!r}"
        return None, ref
    assert not isinstance(got, Exception), f"{path}: fast path raised {got!r}"
    return (got if got[1] is None else None), ref


def _assert_same(path, fast, ref) -> None:
    a, b = dataclasses.asdict(fast[0]), dataclasses.asdict(ref[0])
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not diff, f"{path}: fast and pydicom headers differ: {diff}"
    assert fast[2] == ref[2], f"{path}: has_pixels differs"


def test_fast_headers_equal_pydicom_headers_for_every_file():
    files = _all_files()
    used = 0
    implicit = 0
    for p in files:
        fast, ref = _both_ways(p)
        if fast is None:
            continue
        used += 1
        implicit += fast[0].transfer_syntax == "1.2.840.10008.1.2"
        _assert_same(p, fast, ref)
    assert len(files) > 300
    # the fast path must carry the common files, explicit and implicit VR alike
    assert used > 250 and implicit >= 10, (used, implicit)


def test_fast_path_reads_the_chest_ct_and_it_loads():
    files = chest_files()
    assert len(files) == 100
    for p in files:
        fast, ref = _both_ways(p)
        assert fast is not None, f"{p.name}: fast path declined"
        _assert_same(p, fast, ref)
        assert fast[0].pixel_offset + fast[0].pixel_length == fast[0].file_size
    vol = load_series(scan_paths([CHEST]).series[0])
    direct = pydicom.dcmread(files[0])
    z = [round(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]), 3)
         for f in files]
    k = sorted(z).index(round(float(direct.ImagePositionPatient[2]), 3))
    expected = direct.pixel_array * float(direct.RescaleSlope) + float(direct.RescaleIntercept)
    assert (vol.array[k] == expected).all()


# ---- files derived from a real slice --------------------------------------------------


def _slice(implicit: bool = False) -> Dataset:
    ds = pydicom.dcmread(chest_files()[0])
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _check(path: Path, expect_fast: bool) -> tuple:
    fast, ref = _both_ways(path)
    assert (fast is not None) == expect_fast, path.name
    if fast is not None:
        _assert_same(path, fast, ref)
    return fast, ref


@pytest.mark.parametrize("implicit", [False, True])
def test_latin1_patient_name_is_decoded_like_pydicom(tmp_path, implicit):
    ds = _slice(implicit)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.SeriesDescription = "\tLunge ö\n"  # stray whitespace: stripped both ways
    ds.Rows = 512  # US written as the dictionary says; BitsStored as an odd VR
    ds["BitsStored"].VR = "SS"
    fast, _ = _check(_save(ds, tmp_path / "latin1.dcm"), expect_fast=True)
    assert fast[0].meta["PatientName"] == "Müller^Jürgen"
    assert fast[0].series_description == "Lunge ö" and fast[0].bits_stored == 16


@pytest.mark.parametrize("name, pid", [("A^B=C^D=E^F", " p1 "), ("^^^^", "p2\x00"),
                                       (" lead", ""), ("x\x00", "a  b ")])
def test_patient_values_are_stripped_like_pydicom(tmp_path, name, pid):
    ds = _slice()
    ds.PatientName, ds.PatientID = name, pid
    fast, _ = _check(_save(ds, tmp_path / "pn.dcm"), expect_fast=True)
    assert fast[0].meta["PatientName"] == name.rstrip("\x00 ")


@pytest.mark.parametrize("charset, name", [("ISO_IR 192", "Wang^XiaoDong=王^小東"),
                                           ("ISO 2022 IR 87", "Yamada^Tarou=山田^太郎")])
def test_other_character_sets_fall_back_to_pydicom(tmp_path, charset, name):
    ds = _slice()
    ds.SpecificCharacterSet = ["", charset] if "2022" in charset else charset
    ds.PatientName = name
    _, ref = _check(_save(ds, tmp_path / "cs.dcm"), expect_fast=False)
    assert ref[0].meta["PatientName"] == name


def _el(tag: int, vr: bytes, value: bytes, implicit: bool = False) -> bytes:
    if implicit:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, vr, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _undefined(tag: int, vr: bytes, items: bytes, implicit: bool = False) -> bytes:
    if implicit:
        head = struct.pack("<HHI", tag >> 16, tag & 0xFFFF, 0xFFFFFFFF)
    else:
        head = struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, vr, 0xFFFFFFFF)
    return head + items + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _item(body: bytes, defined: bool = False) -> bytes:
    if defined:
        return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
    return (struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + body
            + struct.pack("<HHI", 0xFFFE, 0xE00D, 0))


def _splice_before_pixels(src: Path, dst: Path, extra: bytes) -> Path:
    """Insert raw elements (in tag order: groups 7FDx) just before the pixel data."""
    h = index_file(src)[0]
    data = src.read_bytes()
    at = h.pixel_offset - 12
    dst.write_bytes(data[:at] + extra + data[at:])
    return dst


def test_nested_undefined_sequences_with_implicit_items_are_skipped(tmp_path):
    ds = _slice()
    inner = Dataset()
    inner.WindowCenter = "999"  # inside a sequence: must not be taken as the top level's
    inner.Rows = 7
    outer = Dataset()
    outer.ReferencedSOPInstanceUID = "1.2.3"
    outer.DerivationCodeSequence = Sequence([inner])
    ds.SourceImageSequence = Sequence([outer, outer])
    ds["SourceImageSequence"].is_undefined_length = True
    for item in ds.SourceImageSequence:
        item.is_undefined_length_sequence_item = True
        item["DerivationCodeSequence"].is_undefined_length = True
    base = _save(ds, tmp_path / "base.dcm")
    assert b"\xff\xff\xff\xff" in base.read_bytes()[:4096]
    creator = _el(0x7FD10010, b"LO", b"MEDVIEWER ")
    # UN of undefined length: items in implicit VR (PS3.5 6.2.2), one nested sequence
    implicit_inner = _undefined(0x00089215, b"", _item(_el(0x00080100, b"", b"ABC ", True)),
                                implicit=True)
    un_seq = _undefined(0x7FD11001, b"UN",
                        _item(_el(0x00280010, b"", b"\x07\x00", implicit=True) + implicit_inner)
                        + _item(b"", defined=True))
    # an encapsulated OB (undefined length, defined-length fragments) inside an explicit item
    fragments = _undefined(0x7FD11003, b"OB", _item(b"", defined=True)
                           + _item(b"\x01\x02\x03\x04", defined=True))
    explicit_seq = _undefined(0x7FD11002, b"SQ", _item(_el(0x00080100, b"SH", b"XY") + fragments))
    path = _splice_before_pixels(base, tmp_path / "nested.dcm", creator + un_seq + explicit_seq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pydicom.dcmread(path)
    assert ref[0x7FD11001].VR == "SQ" and len(ref[0x7FD11002].value) == 1
    fast, _ = _check(path, expect_fast=True)
    assert fast[0].window == (-700.0, 1500.0)  # the top level's, not the items'
    assert fast[0].rows == 512 and fast[0].pixel_length == 512 * 512 * 2
    assert fast[0].pixel_offset + fast[0].pixel_length == fast[0].file_size


def test_implicit_vr_file_with_undefined_sequences(tmp_path):
    ds = _slice(implicit=True)
    ds["ReferencedImageSequence"].is_undefined_length = True
    for item in ds.ReferencedImageSequence:
        item.is_undefined_length_sequence_item = True
    fast, _ = _check(_save(ds, tmp_path / "implicit.dcm"), expect_fast=True)
    assert fast[0].transfer_syntax == "1.2.840.10008.1.2"


def test_truncated_header_declines_and_truncated_pixels_are_recorded(tmp_path):
    src = chest_files()[0]
    data = src.read_bytes()
    head_cut = tmp_path / "head_cut.dcm"
    head_cut.write_bytes(data[:1500])
    _check(head_cut, expect_fast=False)
    pixels_cut = tmp_path / "pixels_cut.dcm"
    pixels_cut.write_bytes(data[:-1000])
    fast, _ = _check(pixels_cut, expect_fast=True)
    assert fast[0].pixel_offset + fast[0].pixel_length > fast[0].file_size


def test_functional_groups_and_other_syntaxes_fall_back():
    enhanced = sorted(QA_ENH.rglob("*.dcm"))
    assert enhanced
    for p in enhanced:
        fast, ref = _both_ways(p)
        assert fast is None and ref[0].enhanced
    for name in ("MR_small_bigendian.dcm", "image_dfl.dcm", "MR_small_jp2klossless.dcm"):
        fast, ref = _both_ways(get_testdata_file(name))
        assert fast is None and ref[0].rows > 0, name
