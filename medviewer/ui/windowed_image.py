"""A pyqtgraph ImageItem that colours 8- and 16-bit slices through one precomputed table.

pyqtgraph renders an int16 slice with levels and a lookup table through ``makeARGB``: a float
rescale, a clip, a table look-up and an ARGB buffer, about 1.2 ms per 512x512 slice; a uint8
label slice becomes an Indexed8 image that Qt converts at every paint. Here the same chain is
run once per levels/table on every possible value (by pyqtgraph's own code path for that type,
so the colours are exactly its own), and each slice is then one ``take`` into a 32-bit image
in the format Qt draws without converting (RGB32, or premultiplied ARGB32 when some colour is
translucent). Levels, lookup table and every other ImageItem behaviour are unchanged; images
of other types, with auto-downsampling or a callable lookup table take pyqtgraph's own path.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from pyqtgraph import functions_qimage
from PySide6.QtGui import QImage

_INDEX = {np.dtype(np.uint8): np.uint8, np.dtype(np.int16): np.uint16, np.dtype(np.uint16): np.uint16}


def _pixels(q: QImage) -> np.ndarray:
    """A copy of a 32-bit QImage's pixels as (h, w, 4) uint8 (the QImage may go away)."""
    return np.array(fn.ndarray_from_qimage(q), dtype=np.uint8, copy=True, order="C")


def colour_table(dtype: np.dtype, levels, lut):
    """(uint32 colours of every value of ``dtype`` indexed by its unsigned view, QImage
    format): what pyqtgraph's ImageItem shows for those levels and lookup table."""
    index = _INDEX[np.dtype(dtype)]
    values = np.arange(np.iinfo(index).max + 1, dtype=index).view(dtype)[None, :]
    q = functions_qimage.try_make_qimage(values, levels=levels, lut=lut)
    if q is not None:  # pyqtgraph's fast path for this type (uint8, uint16)
        argb = _pixels(q.convertToFormat(QImage.Format.Format_ARGB32)).reshape(values.shape + (4,))
    else:  # its general path (int16)
        argb, _ = fn.makeARGB(values, lut=lut, levels=levels)
    table = np.ascontiguousarray(argb[0]).view(np.uint32).ravel()
    if bool(np.all(argb[0, :, 3] == 255)):
        return table, QImage.Format.Format_RGB32
    fmt = QImage.Format.Format_ARGB32_Premultiplied  # premultiplied by Qt itself
    q = QImage(table.data, table.size, 1, table.strides[0] * table.size, QImage.Format.Format_ARGB32)
    return _pixels(q.convertToFormat(fmt)).view(np.uint32).ravel(), fmt


class WindowedImageItem(pg.ImageItem):
    def __init__(self, *args, **kwargs):
        self._table_key = None
        self._table = self._table_format = self._buffer = None
        super().__init__(*args, **kwargs)

    def _fast(self) -> bool:
        img, lut, levels = self.image, self.lut, self.levels
        return (img is not None and img.ndim == 2 and img.size > 0 and img.dtype in _INDEX
                and self.axisOrder == "row-major" and not self.autoDownsample
                and levels is not None and np.ndim(levels) == 1
                and (lut is None or (isinstance(lut, np.ndarray) and lut.dtype == np.uint8)))

    def render(self):
        if not self._fast():
            self._buffer = None
            return super().render()
        img, lut, levels = self.image, self.lut, self.levels
        # the table's contents, not its id: a new table may reuse a freed one's address
        key = (img.dtype.str, None if lut is None else (lut.shape, lut.tobytes()),
               tuple(np.asarray(levels, dtype=float).ravel()))
        if key != self._table_key:
            self._table, self._table_format = colour_table(img.dtype, levels, lut)
            self._table_key = key
        out = self._buffer
        if out is None or out.shape != img.shape:  # reused: no fresh pages at every slice
            out = self._buffer = np.empty(img.shape, dtype=np.uint32)
        self._table.take(img.view(_INDEX[img.dtype]), out=out)  # the QImage shares this memory
        self.qimage = QImage(out.data, out.shape[1], out.shape[0], out.strides[0], self._table_format)
        self._renderRequired = False
        self._unrenderable = False
