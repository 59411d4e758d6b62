"""Fast header parse of common DICOM files: Part 10, little endian, explicit or implicit VR.

``fast_scan(fh, head, size, wanted, refuse)`` walks the top-level elements of an open file,
keeps the values of the wanted tags only, skips sequences (defined or undefined length,
nested items included) and stops at the pixel data element, recording its offset and length.
It declines (returns None) on anything it does not handle exactly like pydicom would (other
transfer syntaxes, functional-group sequences, VR switches, unusual value encodings,
truncation, ...): the caller then falls back to pydicom. Values are returned as text the way
``dicom_values`` reads them from pydicom's raw elements: text VRs decoded latin-1 and
stripped, binary integers as backslash-joined decimals, patient name/ID as pydicom decodes them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
_UNDEFINED = 0xFFFFFFFF
_CHUNK = 16384
_MAX_DEPTH = 24
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"))
_SHORT_VRS = frozenset((b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                        b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                        b"US"))
_ENCAPSULATED_VRS = (b"OB", b"OW", b"SQ", b"UN")  # the VRs that may have undefined length
_TEXT_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI", "ST",
                       "LT"))
_INT_FORMATS = {"US": ("H", 2), "SS": ("h", 2), "UL": ("I", 4), "SL": ("i", 4)}
_PIXEL_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN")
_PIXEL_TAGS = frozenset((0x7FE00010, 0x7FE00008, 0x7FE00009))
_CHARSET_TAG = 0x00080005
_LATIN1_CHARSETS = ("", "ISO_IR 100")
_TS_TAG = 0x00020010
_MEDIA_SOP_TAG = 0x00020002
_unpack_tag_len = struct.Struct("<HHI").unpack_from  # implicit: tag + 4-byte length
_unpack_explicit = struct.Struct("<HH2sH").unpack_from  # explicit: tag, VR, 2-byte length
_unpack_u32 = struct.Struct("<I").unpack_from


class Declined(Exception):
    """The fast parser does not handle this file: use pydicom instead."""


@dataclass
class FastHeader:
    """What the fast parse found: wanted values (tag -> text), pixel data location."""

    transfer_syntax: str
    media_sop_class_uid: str
    values: dict
    has_pixels: bool = False
    pixel_offset: Optional[int] = None
    pixel_length: Optional[int] = None


class _Window:
    """A sliding window over the file: ``buf`` holds the bytes starting at ``base``."""

    __slots__ = ("fh", "buf", "base", "size")

    def __init__(self, fh, head: bytes, size: int):
        self.fh, self.buf, self.base, self.size = fh, head, 0, size

    def at(self, pos: int, n: int) -> int:
        """Index in ``buf`` of file position ``pos`` with ``n`` bytes there (else Declined)."""
        i = pos - self.base
        if i >= 0 and i + n <= len(self.buf):
            return i
        if pos + n > self.size:
            raise Declined("truncated")
        self.fh.seek(pos)
        self.buf, self.base = self.fh.read(max(n, _CHUNK)), pos
        if len(self.buf) < n:
            raise Declined("short read")
        return 0


def _is_vr_like(b: bytes) -> bool:
    return 0x40 < b[0] < 0x5B and 0x40 < b[1] < 0x5B


def _header(w: _Window, pos: int, explicit: bool) -> tuple:
    """(tag, vr bytes or None, length, value position) of the element at ``pos``."""
    i = w.at(pos, 8)
    if not explicit:
        group, elem, length = _unpack_tag_len(w.buf, i)
        return group << 16 | elem, None, length, pos + 8
    group, elem, vr, length = _unpack_explicit(w.buf, i)
    if group == 0xFFFE:  # item / delimiter tags have no VR
        group, elem, length = _unpack_tag_len(w.buf, i)
        return group << 16 | elem, None, length, pos + 8
    if vr in _LONG_VRS:
        i = w.at(pos + 8, 4)
        return group << 16 | elem, vr, _unpack_u32(w.buf, i)[0], pos + 12
    if vr in _SHORT_VRS:
        return group << 16 | elem, vr, length, pos + 8
    raise Declined("unknown VR")


def _skip_items(w: _Window, pos: int, explicit: bool, depth: int) -> int:
    """Skip the items of an undefined-length value at ``pos``; returns the position after
    its sequence delimiter."""
    if depth > _MAX_DEPTH:
        raise Declined("nesting too deep")
    while True:
        i = w.at(pos, 8)
        group, elem, length = _unpack_tag_len(w.buf, i)
        pos += 8
        if group != 0xFFFE:
            raise Declined("expected an item")
        if elem == 0xE0DD:
            return pos
        if elem != 0xE000:
            raise Declined("unexpected delimiter")
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _skip_item_elements(w, pos, explicit, depth + 1)


def _skip_item_elements(w: _Window, pos: int, explicit: bool, depth: int) -> int:
    """Skip the elements of an undefined-length item; returns the position after its
    item delimiter. Like pydicom, an explicit-VR item may switch to implicit VR."""
    i = w.at(pos, 6)
    looks_explicit = _is_vr_like(w.buf[i + 4:i + 6])
    if not explicit and looks_explicit:
        raise Declined("explicit VR inside an implicit item")
    explicit = explicit and looks_explicit
    while True:
        tag, vr, length, pos = _header(w, pos, explicit)
        if tag == 0xFFFEE00D:
            return pos
        if tag >> 16 == 0xFFFE:
            raise Declined("unexpected item tag")
        if length != _UNDEFINED:
            pos += length
        elif vr is None or vr in _ENCAPSULATED_VRS:
            pos = _skip_items(w, pos, explicit if vr != b"UN" else False, depth + 1)
        else:
            raise Declined("undefined length")


def _read_meta(w: _Window) -> tuple:
    """(position of the dataset, transfer syntax, media storage SOP class) from group 2."""
    pos, ts, media = 132, None, ""
    while pos + 8 <= w.size:
        i = w.at(pos, 8)
        if _unpack_tag_len(w.buf, i)[0] != 0x0002:
            break
        tag, vr, length, vpos = _header(w, pos, True)
        if vr is None or length == _UNDEFINED:
            raise Declined("odd file meta")
        if tag in (_TS_TAG, _MEDIA_SOP_TAG):
            j = w.at(vpos, length)
            raw = w.buf[j:j + length]
            if b"\\" in raw:
                raise Declined("multi-valued UID")
            text = raw.decode("latin-1").rstrip("\x00 ")
            if tag == _TS_TAG:
                ts = text
            else:
                media = text
        pos = vpos + length
    if ts not in (EXPLICIT_LE, IMPLICIT_LE):
        raise Declined("transfer syntax")
    return pos, ts, media


def _value_text(raw: bytes, vr: str) -> str:
    if vr in _TEXT_VRS:  # pydicom raw-element text, stripped as Values.text() strips it
        return raw.decode("latin-1").strip(" \x00").strip()
    fmt = _INT_FORMATS.get(vr)
    if fmt is None or len(raw) % fmt[1]:
        raise Declined("value representation")
    return "\\".join(str(v) for v in struct.unpack("<%d%s" % (len(raw) // fmt[1], fmt[0]), raw))


def _person_text(raw: bytes, vr: str, charset: str) -> str:
    """PN / LO patient values as pydicom decodes them (plain ASCII or latin-1 only)."""
    if vr not in ("PN", "LO") or b"\\" in raw:
        raise Declined("person value")
    raw = raw.rstrip(b"\x00 ")
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise Declined("control characters")
    if not raw.isascii() and charset not in _LATIN1_CHARSETS:
        raise Declined("character set")
    return raw.decode("latin-1")


def _check_first(w: _Window, pos: int, explicit: bool) -> None:
    """Decline where pydicom would switch between explicit and implicit VR."""
    if pos + 6 > w.size:
        return
    i = w.at(pos, 6)
    if _is_vr_like(w.buf[i + 4:i + 6]) != explicit:
        raise Declined("VR encoding differs from the transfer syntax")


def fast_scan(fh, head: bytes, size: int, wanted: dict, refuse: frozenset
              ) -> Optional[FastHeader]:
    """Parse the header of open file ``fh`` (``head``: its first bytes, ``size``: its length).

    ``wanted``: tag -> (key, dictionary VR, is_person) of the values to keep (person values,
    i.e. patient name and ID, are decoded with the character set); ``refuse``: tags whose
    presence makes the fast parse decline (e.g. functional group sequences). The values come
    back keyed by ``key``. Returns None when declined."""
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    try:
        return _scan(_Window(fh, head, size), wanted, refuse)
    except (Declined, struct.error):
        return None


def _scan(w: _Window, wanted: dict, refuse: frozenset) -> FastHeader:
    pos, ts, media = _read_meta(w)
    explicit = ts == EXPLICIT_LE
    _check_first(w, pos, explicit)
    out = FastHeader(ts, media, {})
    values = out.values
    persons: list = []
    charset = ""
    size = w.size
    while pos < size:
        buf = w.buf
        i = pos - w.base
        if i < 0 or i + 12 > len(buf):  # near the window's end: the general reader
            tag, vr, length, vpos = _header(w, pos, explicit)
        elif explicit:
            group, elem, vr, length = _unpack_explicit(buf, i)
            tag = group << 16 | elem
            if vr in _LONG_VRS:
                length, vpos = _unpack_u32(buf, i + 8)[0], pos + 12
            elif vr in _SHORT_VRS:
                vpos = pos + 8
            else:
                raise Declined("unknown VR or item tag at top level")
        else:
            group, elem, length = _unpack_tag_len(buf, i)
            tag, vr, vpos = group << 16 | elem, None, pos + 8
        if tag in _PIXEL_TAGS:
            if pos + 12 > size or (explicit and vr not in _PIXEL_VRS):
                raise Declined("unusual pixel data element")
            out.has_pixels = True
            if length != _UNDEFINED:
                out.pixel_offset, out.pixel_length = vpos, length
            break
        if tag >> 16 in (0xFFFE, 0x0000) or tag in refuse:
            raise Declined("unsupported element")
        want = wanted.get(tag)
        if length == _UNDEFINED:
            if want is not None or (vr is not None and vr not in _ENCAPSULATED_VRS):
                raise Declined("undefined length")
            pos = _skip_items(w, vpos, explicit and vr != b"UN", 1)
            continue
        pos = vpos + length
        if want is None:
            continue
        if pos > size:
            raise Declined("truncated value")
        j = vpos - w.base
        if j < 0 or j + length > len(w.buf):
            j = w.at(vpos, length)
        raw = w.buf[j:j + length]
        key, dict_vr, is_person = want
        vr_text = vr.decode() if vr is not None else dict_vr
        if is_person:
            persons.append((key, raw, vr_text))
            continue
        values[key] = _value_text(raw, vr_text)
        if tag == _CHARSET_TAG:
            charset = values[key]
    if pos > size:
        raise Declined("truncated value")
    for key, raw, vr_text in persons:
        values[key] = _person_text(raw, vr_text, charset)
    return out
