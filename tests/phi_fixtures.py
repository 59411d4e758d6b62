"""A real DICOM study with a planted patient identity, and a search of output files for it.

``planted_study(folder, n)`` copies ``n`` consecutive slices of the demo chest CT (TCIA
CMB-CRC, ../shared/data) and sets the patient's name, ID, birth date and other identifying
tags with pydicom (also in a private tag and the study and series descriptions, which free
text sometimes repeats). ``find_phi(root)`` lists every file below ``root`` holding any planted
value: raw bytes, and what gzip files, PNG text chunks and zlib streams in SQLite and
journal files decompress to."""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import pydicom

DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA",
                           Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
CHEST = (DATA / "tcia_cmb_crc_ct_chest").resolve()

NAME = "Qwerzy^Haldorvinn"
PATIENT_ID = "PHI7731ZQX"
BIRTH_DATE = "19470312"
OTHER_ID = "MRN55210987"
# what must appear nowhere: the name, each part of it, the IDs, the birth date
PLANTED = (NAME, "Qwerzy", "Haldorvinn", "Qwerzy Haldorvinn", PATIENT_ID, OTHER_ID,
           BIRTH_DATE, "1947-03-12")


def planted_study(folder: Path, n: int = 6, first: int = 48) -> Path:
    """``n`` chest CT slices (from slice ``first``) with the planted identity, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in sorted(CHEST.glob("*.dcm"))[first:first + n]:
        ds = pydicom.dcmread(src)
        ds.PatientName = NAME
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = BIRTH_DATE
        ds.OtherPatientIDs = OTHER_ID
        ds.InstitutionName = "Haldorvinn Memorial"
        ds.ReferringPhysicianName = "Qwerzy^Doctor"
        ds.AccessionNumber = "ACC" + PATIENT_ID[-6:]
        ds.StudyDescription = f"CT chest {PATIENT_ID}"
        ds.SeriesDescription = f"lung {PATIENT_ID}"
        block = ds.private_block(0x0029, "PHI TEST", create=True)
        block.add_new(0x10, "LO", NAME.replace("^", " "))
        ds.save_as(folder / src.name, enforce_file_format=True)
    return folder


def _png_texts(data: bytes) -> list:
    out, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            out.append(body)
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out.append(key + zlib.decompress(rest[1:]))
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _tkey, _, text = rest.partition(b"\0")
            out.append(key + (zlib.decompress(text) if compressed else text))
        pos += 12 + length
    return out


def _zlib_streams(data: bytes, limit: int = 64) -> list:
    """What the zlib streams embedded in ``data`` decompress to (journals, SQLite blobs)."""
    out, start, found = [], 0, 0
    while found < limit:
        i = data.find(b"\x78", start)
        if i < 0 or i + 1 >= len(data):
            break
        start = i + 1
        if data[i + 1] not in (0x01, 0x5E, 0x9C, 0xDA):
            continue
        try:
            out.append(zlib.decompressobj().decompress(data[i:], 1 << 26))
            found += 1
        except zlib.error:
            continue
    return out


def file_views(path: Path) -> list:
    """The bytes of a file and what it decompresses to."""
    data = path.read_bytes()
    views = [data]
    if data[:2] == b"\x1f\x8b":
        try:
            views.append(gzip.decompress(data))
        except (OSError, EOFError):
            pass
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        views += _png_texts(data)
    elif path.suffix.lower() not in (".gz", ".png", ".dcm"):
        views += _zlib_streams(data)
    return views


def phi_hits(data: bytes, values=PLANTED) -> list:
    low = data.lower()
    hits = []
    for v in values:
        for enc in ("utf-8", "utf-16-le"):
            if v.lower().encode(enc) in low:
                hits.append(v)
                break
    return hits


def find_phi(root: Path, skip=(), values=PLANTED) -> dict:
    """{relative path: planted values found} for every file below ``root`` not under a
    ``skip`` folder."""
    found = {}
    skip = [Path(s).resolve() for s in skip]
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file() or any(s in path.resolve().parents for s in skip):
            continue
        hits = sorted({h for view in file_views(path) for h in phi_hits(view, values)})
        if hits:
            found[str(path.relative_to(root))] = hits
    return found
