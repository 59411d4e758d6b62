"""Mutated image files for the loader's fuzz test, generated from the shared real files.

``write_mutants(out_dir, count, seed)`` writes ``count`` mutants (files, or folders of three
slices with one mutated) and returns their paths. Mutant ``i`` depends only on ``(seed, i)``:
the same seed gives the same files. Mutations are generic (byte and header-field level, chosen
at random from the seed file's own structure), not aimed at any one reader path:

- DICOM: bit flips (anywhere, in the header, in the pixel data), truncation, wrong value
  lengths, header values set to extreme or invalid values (Rows/Columns/NumberOfFrames/Bits,
  NaN/inf/1e308 in positions, orientations, spacings, rescale, window and numbering tags,
  other photometric interpretations and transfer syntaxes) at any nesting depth, values added
  where the file had none, and corrupt encapsulated fragments (RLE segment tables, JPEG/JPEG
  2000 frame sizes, fragment lengths, byte damage);
- NIfTI (.nii and .nii.gz): header fields (dims, datatype, bitpix, pixdim, vox_offset,
  scl_slope/inter, qform/sform codes, quaternions and offsets, sform rows incl. NaN/inf,
  sizeof_hdr, magic), bit flips, truncation, corrupt gzip streams;
- NRRD: header lines (sizes, type, dimension, space directions/origin with NaN/inf,
  encoding, endian), truncation, bit flips.
"""
from __future__ import annotations

import gzip
import os
import random
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA",
                          Path(__file__).resolve().parents[3] / ".." / "shared" / "data")).resolve()
PYDICOM_DATA = Path(__import__("pydicom").__file__).parent / "data" / "test_files"

NAN_TEXT = ("nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e-308", "0", "-0", "-1",
            "2147483648", "-2147483649", "99999999999999999999", "abc", "", "1e39", "-3.4e39",
            "0.0001", "1\\2", "\\\\\\")
BIG_INT_TEXT = ("0", "-1", "-2147483648", "2147483647", "4294967296", "65535", "1e9", "nan",
                "1e308", "3.5", "abc", "", "1000000")
US_VALUES = (0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 0x7FFF, 0x8000, 0xFFFF)
PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422",
               "YBR_ICT", "YBR_RCT", "ARGB", "XYZ", "")
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                     "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.57",
                     "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                     "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                     "1.2.840.10008.1.2.1.99", "1.2.3.4", "")

# keyword -> kind of nasty value; tags are found at any depth (functional groups included)
FIELDS = {
    "Rows": "us_dim", "Columns": "us_dim", "NumberOfFrames": "frames",
    "SamplesPerPixel": "us", "BitsAllocated": "us", "BitsStored": "us", "HighBit": "us",
    "PixelRepresentation": "us", "PlanarConfiguration": "us",
    "PhotometricInterpretation": "photometric", "TransferSyntaxUID": "ts",
    "ImagePositionPatient": "num3", "ImageOrientationPatient": "num6", "PixelSpacing": "num2",
    "ImagerPixelSpacing": "num2", "SliceThickness": "num", "SpacingBetweenSlices": "num",
    "RescaleSlope": "num", "RescaleIntercept": "num", "WindowCenter": "num",
    "WindowWidth": "num", "GantryDetectorTilt": "num", "InstanceNumber": "int",
    "AcquisitionNumber": "int", "SeriesNumber": "int", "TemporalPositionIdentifier": "int",
    "TemporalPositionIndex": "ul", "InStackPositionNumber": "ul",
    "DimensionIndexValues": "ul", "FrameAcquisitionNumber": "us",
    "RedPaletteColorLookupTableDescriptor": "us", "GreenPaletteColorLookupTableDescriptor": "us",
    "BluePaletteColorLookupTableDescriptor": "us", "LargestImagePixelValue": "us",
    "SmallestImagePixelValue": "us", "SliceLocation": "num", "EchoTime": "num",
}
ADDABLE = {"NumberOfFrames": "IS", "PixelSpacing": "DS", "ImagePositionPatient": "DS",
           "ImageOrientationPatient": "DS", "RescaleSlope": "DS", "RescaleIntercept": "DS",
           "InstanceNumber": "IS", "AcquisitionNumber": "IS", "SliceThickness": "DS",
           "SpacingBetweenSlices": "DS"}


@dataclass(frozen=True)
class Seed:
    kind: str  # "dicom", "series", "nifti", "nrrd"
    paths: tuple


def _existing(paths) -> tuple:
    return tuple(str(p) for p in paths if Path(p).is_file())


@lru_cache(maxsize=1)
def seeds() -> tuple:
    """The seed files: real DICOM of every transfer syntax and layout in the shared data
    (plus pydicom's small RLE/JPEG/colour/multi-frame files), series of three slices, NIfTI
    and NRRD files. Only files that exist are used."""
    d = DATA
    single = [
        *sorted((d / "tcia_cmb_crc_ct_chest").glob("1-00[1-3].dcm")),
        *sorted((d / "dcm_qa_ts" / "In").glob("*.dcm")),
        *sorted((d / "dcm_qa_12bit" / "In").glob("*.dcm"))[:2],
        d / "dcm_qa_enh" / "In" / "Siemens" / "XA10" / "6_1.dcm",
        d / "dcm_qa_enh" / "In" / "Philips" / "IM_0027_fMAP.dcm",
        d / "dcm_qa_toshiba_oblique" / "In" / "Galan" / "10006_DTI_ALL_20d" / "0001.dcm",
        *sorted((d / "totalseg" / "tests" / "reference_files" / "example_ct_dicom").glob("*"))[:1],
        *sorted((d / "monai_testing_data" / "tests" / "testing_data" / "CT_DICOM").glob("*"))[:1],
        *[PYDICOM_DATA / n for n in (
            "MR_small_RLE.dcm", "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle.dcm", "rtdose_rle.dcm",
            "SC_rgb_jpeg_dcmtk.dcm", "JPEG-lossy.dcm", "MR_small_jp2klossless.dcm",
            "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_small_odd.dcm", "MR_small_bigendian.dcm",
            "CT_small.dcm", "rtdose.dcm", "SC_ybr_full_422_uncompressed.dcm", "no_meta.dcm",
            "JPEG2000.dcm", "SC_rgb_jpeg_gdcm.dcm")],
    ]
    out = [Seed("dicom", (p,)) for p in _existing(single)]
    for folder, names in (
            (d / "tcia_cmb_crc_ct_chest", ("1-040.dcm", "1-041.dcm", "1-042.dcm")),
            (d / "dcm_qa_toshiba_oblique" / "In" / "Galan" / "10006_DTI_ALL_20d",
             ("0002.dcm", "0003.dcm", "0004.dcm")),
            (d / "monai_testing_data" / "tests" / "testing_data" / "CT_DICOM",
             ("7106", "7136", "7166"))):
        paths = _existing(folder / n for n in names)
        if len(paths) == 3:
            out.append(Seed("series", paths))
    ref = d / "totalseg" / "tests" / "reference_files"
    for p in _existing((d / "dcm_qa_enh" / "Ref" / "Siemens_REST1_w_SMS_PF7-8_6.nii",
                        ref / "example_ct_sm.nii.gz", ref / "example_mr_sm.nii.gz",
                        ref / "example_seg_roi_subset.nii.gz",
                        d / "monai_testing_data" / "tests" / "testing_data" / "anatomical.nii")):
        out.append(Seed("nifti", (p,)))
    for p in _existing((d / "pyradiomics_data" / "data" / "prostate_phantom_subvolume.nrrd",
                        d / "pyradiomics_data" / "data" / "breast1_label.nrrd")):
        out.append(Seed("nrrd", (p,)))
    return tuple(out)


# ---------------------------------------------------------------------------- DICOM structure
@dataclass(frozen=True)
class Elem:
    tag: int
    vr: str
    value_pos: int
    length: int
    len_pos: int  # where the length field is
    len_size: int  # 2 or 4 bytes
    little: bool
    depth: int


@lru_cache(maxsize=64)
def _dicom_layout(path: str) -> tuple:
    """(elements at every depth, encapsulated fragments [(offset, length, item header pos)])."""
    import pydicom
    from pydicom.dataelem import RawDataElement

    elems: list = []
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        return (), ()

    def add(raw, depth: int, explicit: bool) -> None:
        vr = raw.VR or ""
        if raw.value_tell is None or raw.length == 0xFFFFFFFF:
            return
        long_vr = vr in ("OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UC", "UN", "UR", "UT", "SV",
                         "UV")
        size = 4 if (not explicit or long_vr) else 2
        elems.append(Elem(int(raw.tag), vr, raw.value_tell, raw.length, raw.value_tell - size,
                          size, bool(raw.is_little_endian), depth))

    def walk(dset, depth: int) -> None:
        for tag in list(dset._dict):
            raw = dset._dict[tag]
            if isinstance(raw, RawDataElement) and raw.VR != "SQ":
                add(raw, depth, not raw.is_implicit_VR)
                continue
            try:
                el = dset[tag]
            except Exception:
                continue
            if el.VR == "SQ":
                for item in el.value:
                    walk(item, depth + 1)

    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        walk(meta, 0)
    try:
        walk(ds, 0)
    except Exception:
        pass
    frags = _fragments(Path(path).read_bytes())
    return tuple(elems), tuple(frags)


def _fragments(raw: bytes) -> list:
    """Items of an undefined-length (encapsulated) pixel data element, little endian."""
    i = raw.rfind(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff")
    if i < 0:
        i = raw.rfind(b"\xe0\x7f\x10\x00\xff\xff\xff\xff")
        pos = i + 8
    else:
        pos = i + 12
    if i < 0:
        return []
    out = []
    while pos + 8 <= len(raw):
        group, elem, length = struct.unpack_from("<HHI", raw, pos)
        if group != 0xFFFE or elem != 0xE000:
            break
        out.append((pos + 8, length, pos))
        pos += 8 + length
    return out


def _replace(buf: bytearray, e: Elem, value: bytes, keep_length: bool) -> bytearray:
    """Splice ``value`` into element ``e``: in place (padded/cut to the old length) inside
    sequences, else with a new length field."""
    if keep_length or e.depth > 0:
        value = (value + b" " * e.length)[:e.length]
        buf[e.value_pos:e.value_pos + e.length] = value
        return buf
    if len(value) % 2:
        value += b" " if e.vr not in ("UI",) else b"\x00"
    fmt = ("<" if e.little else ">") + ("H" if e.len_size == 2 else "I")
    if e.len_size == 2 and len(value) > 0xFFFF:
        value = value[:0xFFFE]
    new = bytearray(buf[:e.len_pos])
    new += struct.pack(fmt, len(value))
    new += buf[e.len_pos + e.len_size:e.value_pos]
    new += value
    new += buf[e.value_pos + e.length:]
    return new


def _nasty_value(rng: random.Random, kind: str, e: Elem) -> bytes:
    binary = e.vr in ("US", "SS", "UL", "SL", "AT", "FL", "FD", "OB", "OW")
    if kind in ("us", "us_dim", "ul") and binary:
        n = max(1, e.length // (2 if e.vr in ("US", "SS") else 4))
        fmt = ("<" if e.little else ">") + ("H" if e.vr in ("US", "SS") else "I") * n
        pick = [rng.choice(US_VALUES) if kind != "ul" else rng.choice((0, 1, 2**31 - 1, 2**32 - 1,
                                                                      rng.randrange(2**32)))
                for _ in range(n)]
        if kind == "us_dim" and rng.random() < 0.5:
            pick = [rng.choice((0, 1, 0xFFFF, 0x8000, 0x7FFF, 60000, rng.randrange(1, 70000) & 0xFFFF))
                    for _ in range(n)]
        return struct.pack(fmt, *pick)
    if binary:
        return bytes(rng.randrange(256) for _ in range(e.length))
    if kind == "photometric":
        return rng.choice(PHOTOMETRIC).encode()
    if kind == "ts":
        return rng.choice(TRANSFER_SYNTAXES).encode()
    if kind in ("frames", "int", "us", "us_dim", "ul"):
        return rng.choice(BIG_INT_TEXT).encode()
    n = {"num2": 2, "num3": 3, "num6": 6}.get(kind, 1)
    parts = [rng.choice(("1", "0", "0.5", "-100.5", "1e-9")) for _ in range(n)]
    if kind == "num6" and rng.random() < 0.3:
        parts = rng.choice((["1", "0", "0", "1", "0", "0"], ["0"] * 6, ["1", "0", "0", "0", "1", "0"],
                            ["1e308"] * 6))
    for _ in range(rng.randint(1, n)):
        parts[rng.randrange(n)] = rng.choice(NAN_TEXT)
    if rng.random() < 0.1:
        parts = parts[:-1]  # one value short
    return "\\".join(parts).encode()


def _set_field(rng: random.Random, buf: bytearray, layout: tuple) -> tuple:
    from pydicom.datadict import keyword_for_tag

    elems = [e for e in layout[0] if keyword_for_tag(e.tag) in FIELDS
             and e.value_pos + e.length <= len(buf)]
    if not elems:
        return buf, "set:none"
    e = rng.choice(elems)
    kw = keyword_for_tag(e.tag)
    value = _nasty_value(rng, FIELDS[kw], e)
    return _replace(buf, e, value, keep_length=False), f"set:{kw}={value[:24]!r}"


def _wrong_length(rng: random.Random, buf: bytearray, layout: tuple) -> tuple:
    elems = [e for e in layout[0] if e.value_pos + e.length <= len(buf)]
    if not elems:
        return buf, "len:none"
    e = rng.choice(elems)
    cap = 0xFFFF if e.len_size == 2 else 0xFFFFFFFF
    new = rng.choice((0, 1, e.length + 1, e.length + 2, max(0, e.length - 2), e.length * 2,
                      e.length + 1000, cap, cap - 1, rng.randrange(cap)))
    fmt = ("<" if e.little else ">") + ("H" if e.len_size == 2 else "I")
    struct.pack_into(fmt, buf, e.len_pos, min(new, cap))
    return buf, f"len:{e.tag:08x}={new}"


def _flip_bits(rng: random.Random, buf: bytearray, where: str = "") -> tuple:
    if not buf:
        return buf, "flip:none"
    n = rng.choice((1, 2, 4, 8, 16, 64))
    where = where or rng.choice(("any", "head", "tail"))
    lo, hi = {"any": (0, len(buf)), "head": (0, min(len(buf), 4096)),
              "tail": (int(len(buf) * 0.7), len(buf))}[where]
    if hi <= lo:
        return buf, "flip:none"
    for _ in range(n):
        i = rng.randrange(lo, hi)
        buf[i] ^= 1 << rng.randrange(8)
    return buf, f"flip:{where}x{n}"


def _truncate(rng: random.Random, buf: bytearray) -> tuple:
    if len(buf) < 2:
        return buf, "truncate:none"
    cut = rng.choice((rng.randrange(len(buf)), len(buf) - rng.randint(1, 64),
                      int(len(buf) * rng.random() ** 3)))
    return buf[:max(0, cut)], f"truncate:{cut}"


def _add_field(rng: random.Random, path: str) -> tuple:
    """Add a tag the file lacks (e.g. NumberOfFrames on a single-frame file), then set it."""
    import io

    import pydicom
    from pydicom.datadict import tag_for_keyword

    ds = pydicom.dcmread(path, force=True)
    missing = [k for k in ADDABLE if k not in ds]
    if not missing:
        return None, "add:none"
    kw = rng.choice(missing)
    n = {"PixelSpacing": 2, "ImagePositionPatient": 3, "ImageOrientationPatient": 6}.get(kw, 1)
    ds.add_new(tag_for_keyword(kw), ADDABLE[kw], "\\".join(["1"] * n))
    bio = io.BytesIO()
    try:
        ds.save_as(bio, enforce_file_format=False)
    except Exception:
        return None, "add:failed"
    return bytearray(bio.getvalue()), f"add:{kw}"


def _corrupt_fragment(rng: random.Random, buf: bytearray, frags: tuple) -> tuple:
    frames = [f for f in frags if f[1] > 16 and f[0] + f[1] <= len(buf)]
    if not frames:
        return _flip_bits(rng, buf, "tail")
    off, length, item_pos = rng.choice(frames)
    op = rng.choice(("rle_header", "sof", "item_length", "bytes", "zero", "cut"))
    if op == "rle_header":
        struct.pack_into("<I", buf, off, rng.choice((0, 1, 2, 3, 4, 15, 16, 255, 2**31)))
        for k in range(rng.randint(1, 4)):
            struct.pack_into("<I", buf, off + 4 * rng.randint(1, 15),
                             rng.choice((0, 64, length, length + 1000, 2**32 - 1,
                                         rng.randrange(2**32))))
    elif op == "sof":
        frag = bytes(buf[off:off + length])
        for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc3", b"\xff\xf7", b"\xff\x51"):
            j = frag.find(marker)
            if j >= 0:
                p = off + j + (6 if marker != b"\xff\x51" else 8)  # height/width or Xsiz
                if p + 4 <= off + length:
                    size = 4 if marker == b"\xff\x51" else 2
                    val = rng.choice((0, 1, 0xFFFF, 0x7FFF, rng.randrange(1 << (8 * size))))
                    buf[p:p + size] = val.to_bytes(size, "big")
                break
        else:
            return _flip_bits(rng, buf, "tail")
    elif op == "item_length":
        struct.pack_into("<I", buf, item_pos + 4, rng.choice((0, 1, length - 1, length + 7,
                                                              length * 4, 2**32 - 1)))
    elif op == "bytes":
        for _ in range(rng.choice((1, 8, 64, 512))):
            buf[rng.randrange(off, off + length)] = rng.randrange(256)
    elif op == "zero":
        a = rng.randrange(off, off + length)
        b = min(off + length, a + rng.randint(1, 4096))
        buf[a:b] = bytes(b - a)
    else:
        return buf[:rng.randrange(off, off + length)], "frag:cut"
    return buf, f"frag:{op}"


def _mutate_dicom(rng: random.Random, path: str) -> tuple:
    buf = bytearray(Path(path).read_bytes())
    layout = _dicom_layout(path)
    ops = []
    n_ops = rng.choice((1, 1, 1, 2, 3))
    for k in range(n_ops):
        op = rng.choices(("set", "flip", "truncate", "length", "frag", "add"),
                         weights=(40, 15, 10, 12, 15, 8))[0]
        if op == "add" and k == 0:
            new, what = _add_field(rng, path)
            if new is not None:
                buf, layout = new, _layout_of_bytes(bytes(new))
            ops.append(what)
            continue
        if op in ("set", "add"):
            buf, what = _set_field(rng, buf, layout)
            layout = _layout_of_bytes(bytes(buf)) if k + 1 < n_ops else layout
        elif op == "flip":
            buf, what = _flip_bits(rng, buf)
        elif op == "truncate":
            buf, what = _truncate(rng, buf)
        elif op == "length":
            buf, what = _wrong_length(rng, buf, layout)
        else:
            buf, what = _corrupt_fragment(rng, buf, _layout_of_bytes(bytes(buf))[1])
        ops.append(what)
    return bytes(buf), ops


def _layout_of_bytes(raw: bytes) -> tuple:
    import hashlib
    import tempfile

    key = hashlib.sha1(raw).hexdigest()
    tmp = Path(tempfile.gettempdir()) / f"medviewer-fuzz-layout-{key}.dcm"
    if not tmp.exists():
        tmp.write_bytes(raw)
    try:
        return _dicom_layout(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- NIfTI
NIFTI_FLOATS = (float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 1e38, -1e38, 1e-38, 1e-45,
                3.4e38)
NIFTI_FIELDS = {  # name: (offset, struct format, count)
    "sizeof_hdr": (0, "i", 1), "dim": (40, "h", 8), "datatype": (70, "h", 1),
    "bitpix": (72, "h", 1), "pixdim": (76, "f", 8), "vox_offset": (108, "f", 1),
    "scl_slope": (112, "f", 1), "scl_inter": (116, "f", 1), "qform_code": (252, "h", 1),
    "sform_code": (254, "h", 1), "quatern": (256, "f", 3), "qoffset": (268, "f", 3),
    "srow_x": (280, "f", 4), "srow_y": (296, "f", 4), "srow_z": (312, "f", 4),
    "magic": (344, "4s", 1),
}
NIFTI_DTYPES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048,
                2304, 255, 32767, -1)


@lru_cache(maxsize=16)
def _nifti_bytes(path: str) -> bytes:
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if path.endswith(".gz") else raw


def _mutate_nifti(rng: random.Random, path: str) -> tuple:
    buf = bytearray(_nifti_bytes(path))
    little = struct.unpack_from("<i", buf, 0)[0] == 348
    e = "<" if little else ">"
    ops = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.choices(("field", "flip", "truncate"), weights=(75, 15, 10))[0]
        if op == "flip":
            if rng.random() < 0.7 and buf:
                buf, what = _flip_header(rng, buf), "flip:header"
            else:
                buf, what = _flip_bits(rng, buf, "any")
        elif op == "truncate":
            buf, what = _truncate(rng, buf)
        else:
            name = rng.choice(list(NIFTI_FIELDS))
            off, fmt, n = NIFTI_FIELDS[name]
            if off + struct.calcsize(e + fmt * n) > len(buf):
                continue
            if fmt == "f":
                vals = list(struct.unpack_from(e + fmt * n, buf, off))
                for _ in range(rng.randint(1, n)):
                    vals[rng.randrange(n)] = rng.choice(NIFTI_FLOATS)
                if name == "vox_offset" and rng.random() < 0.5:
                    vals = [rng.choice((0.0, 348.0, 351.0, float(len(buf)), 1e10, -352.0))]
            elif fmt == "4s":
                vals = [rng.choice((b"n+1\x00", b"ni1\x00", b"n+2\x00", b"\x00\x00\x00\x00",
                                    b"xyz\x00"))]
            elif name == "dim":
                vals = list(struct.unpack_from(e + "8h", buf, off))
                for _ in range(rng.randint(1, 3)):
                    vals[rng.randrange(8)] = rng.choice((0, -1, 1, 2, 3, 4, 5, 7, 8, 9, 1000,
                                                         32767, -32768, rng.randrange(-300, 300)))
            elif name == "datatype":
                vals = [rng.choice(NIFTI_DTYPES)]
            elif name in ("qform_code", "sform_code"):
                vals = [rng.choice((0, 1, 2, 3, 4, 5, -1, 32767))]
            elif name == "sizeof_hdr":
                vals = [rng.choice((0, 540, 347, 349, -348, 2**31 - 1))]
            else:
                vals = [rng.choice((0, 1, 7, 8, 16, 24, 32, 64, 128, 256, -8, 32767))]
            struct.pack_into(e + fmt * n, buf, off, *vals)
            what = f"{name}={vals}"
        ops.append(what)
    gz = path.endswith(".gz")
    out = gzip.compress(bytes(buf), compresslevel=1, mtime=0) if gz else bytes(buf)
    if gz and rng.random() < 0.15:  # damage the compressed stream itself
        out = bytearray(out)
        if rng.random() < 0.5:
            out = out[:rng.randrange(10, len(out))]
            ops.append("gz:truncate")
        else:
            for _ in range(rng.choice((1, 4, 16))):
                out[rng.randrange(10, len(out))] ^= 0xFF
            ops.append("gz:damage")
        out = bytes(out)
    return out, ops


def _flip_header(rng: random.Random, buf: bytearray) -> bytearray:
    for _ in range(rng.choice((1, 2, 4, 8))):
        i = rng.randrange(0, min(352, len(buf)))
        buf[i] ^= 1 << rng.randrange(8)
    return buf


# ---------------------------------------------------------------------------- NRRD
NRRD_LINES = {
    "sizes": ("sizes: 82 67 13", "sizes: 100000 100000 100000", "sizes: 0 67 13",
              "sizes: -1 67 13", "sizes: 82 67", "sizes: 82 67 13 3", "sizes: nan 67 13"),
    "space directions": ("space directions: (nan,0,0) (0,-0.5,0) (0,0,3)",
                         "space directions: (inf,0,0) (0,-0.5,0) (0,0,3)",
                         "space directions: (0,0,0) (0,0,0) (0,0,0)",
                         "space directions: (1,0,0) (1,0,0) (0,0,3)",
                         "space directions: (1e308,0,0) (0,1e308,0) (0,0,1e308)",
                         "space directions: none (0,1,0) (0,0,1)"),
    "space origin": ("space origin: (nan,nan,nan)", "space origin: (inf,0,0)",
                     "space origin: (1e308,1e308,1e308)", "space origin: (1,2)"),
    "type": ("type: float", "type: double", "type: unsigned char", "type: int64",
             "type: block", "type: foo"),
    "dimension": ("dimension: 0", "dimension: 2", "dimension: 4", "dimension: 17"),
    "encoding": ("encoding: raw", "encoding: gzip", "encoding: bzip2", "encoding: ascii",
                 "encoding: hex"),
    "endian": ("endian: big", "endian: little", "endian: middle"),
    "spacings": ("spacings: nan nan nan", "spacings: 0 0 0", "spacings: -1 1 1"),
}


def _mutate_nrrd(rng: random.Random, path: str) -> tuple:
    raw = Path(path).read_bytes()
    split = raw.find(b"\n\n")
    head, body = (raw[:split].decode("latin-1"), raw[split:]) if split > 0 else ("", raw)
    lines = head.split("\n")
    ops = []
    for _ in range(rng.choice((1, 1, 2))):
        op = rng.choices(("line", "flip", "truncate"), weights=(70, 15, 15))[0]
        if op == "line":
            key = rng.choice(list(NRRD_LINES))
            new = rng.choice(NRRD_LINES[key])
            idx = [i for i, ln in enumerate(lines) if ln.startswith(key + ":")]
            if idx:
                lines[idx[0]] = new
            else:
                lines.append(new)
            ops.append(new)
        elif op == "flip":
            b, what = _flip_bits(rng, bytearray(body))
            body = bytes(b)
            ops.append(what)
        elif body:
            body = body[:rng.randrange(len(body))]
            ops.append("truncate")
    return "\n".join(lines).encode("latin-1") + body, ops


# ---------------------------------------------------------------------------- mutants
def make_mutant(out_dir: Path, seed: int, index: int) -> tuple:
    """Write mutant ``index`` under ``out_dir``; returns (path, seed file name, ops)."""
    rng = random.Random(f"{seed}:{index}")
    s = rng.choice(seeds())
    src = s.paths[0]
    name = f"m{index:05d}"
    if s.kind == "series":
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        victim = rng.randrange(len(s.paths))
        ops: list = []
        for k, p in enumerate(s.paths):
            if k == victim:
                data, ops = _mutate_dicom(rng, p)
            else:
                data = Path(p).read_bytes()
            (folder / f"{k}.dcm").write_bytes(data)
        return folder, Path(s.paths[victim]).name, ops
    if s.kind == "nifti":
        data, ops = _mutate_nifti(rng, src)
        suffix = ".nii.gz" if src.endswith(".gz") else ".nii"
    elif s.kind == "nrrd":
        data, ops = _mutate_nrrd(rng, src)
        suffix = ".nrrd"
    else:
        data, ops = _mutate_dicom(rng, src)
        suffix = ".dcm"
    path = out_dir / (name + suffix)
    path.write_bytes(data)
    return path, Path(src).name, ops


def write_mutants(out_dir, count: int, seed: int = 13, start: int = 0) -> list:
    """Write mutants ``start .. start+count-1``; returns [(path, seed name, ops)]."""
    import warnings

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the mutants it parses
        return [make_mutant(out, seed, i) for i in range(start, start + count)]


def with_value(src, dst, keyword: str, value, every: bool = False) -> Path:
    """Copy DICOM file ``src`` to ``dst`` with ``keyword`` set to the raw ``value`` (bytes or
    text, written as is: "nan" in an IS/DS tag, 65535 in a US tag...), the way a damaged file
    would hold it. The top-level element (or, with ``every``, each one at any depth) is
    replaced; a tag the file lacks is added first."""
    import warnings

    from pydicom.datadict import tag_for_keyword

    raw = value.encode() if isinstance(value, str) else bytes(value)
    tag = tag_for_keyword(keyword)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = bytearray(Path(src).read_bytes())
        layout = _dicom_layout(str(src))
        if not any(e.tag == tag and e.depth == 0 for e in layout[0]) and keyword in ADDABLE \
                and not every:
            import io

            import pydicom

            ds = pydicom.dcmread(src, force=True)
            ds.add_new(tag, ADDABLE[keyword], "1")
            bio = io.BytesIO()
            ds.save_as(bio, enforce_file_format=False)
            buf = bytearray(bio.getvalue())
            layout = _layout_of_bytes(bytes(buf))
        targets = [e for e in layout[0] if e.tag == tag and (every or e.depth == 0)]
        if not targets:
            raise ValueError(f"{keyword} not found in {src}")
        for e in sorted(targets, key=lambda e: -e.value_pos):  # from the end: offsets hold
            buf = _replace(buf, e, raw, keep_length=False)
    Path(dst).write_bytes(bytes(buf))
    return Path(dst)


def panicking_rle(folder) -> Path:
    """pydicom's 7.8 kB MR_small_RLE.dcm with its second RLE segment offset moved into the
    first segment: pylibjpeg-rle panics on it (pyo3 PanicException, a BaseException that is
    not an Exception). Written to ``folder/panic_rle.dcm``."""
    from pydicom.data import get_testdata_file

    raw = bytearray(Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes())
    i = raw.find(struct.pack("<3I", 2, 64, 1948))  # the RLE header: 2 segments at 64, 1948
    if i < 0:
        raise ValueError("MR_small_RLE.dcm is not the file this helper knows")
    struct.pack_into("<I", raw, i + 8, 70)
    path = Path(folder) / "panic_rle.dcm"
    path.write_bytes(bytes(raw))
    return path
