"""WindowedImageItem (one colour table per levels/LUT) paints exactly what pyqtgraph's own
ImageItem paints, on real CT slices and label maps; the slice views use it and follow window
changes and label edits on sagittal slices served from cached blocks."""
import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from medviewer.core.overlay import label_lut
from medviewer.core.reslice import Reslicer
from medviewer.core.windowing import window_to_levels
from medviewer.ui.windowed_image import WindowedImageItem

GREY = np.arange(256, dtype=np.uint8)


def _painted(item_cls, img, levels, lut, size=(300, 260)) -> np.ndarray:
    """The pixels of ``img`` drawn by an item of ``item_cls``, scaled onto a grey canvas as a
    view does (premultiplied ARGB, what Qt composes)."""
    item = item_cls(axisOrder="row-major")
    if lut is not None:
        item.setLookupTable(lut)
    item.setImage(img, autoLevels=False, levels=levels)
    item.render()
    canvas = QImage(size[0], size[1], QImage.Format.Format_ARGB32_Premultiplied)
    canvas.fill(QColor(90, 120, 60))
    p = QPainter(canvas)
    p.drawImage(QRectF(0, 0, size[0], size[1]), item.qimage)
    p.end()
    return pg.functions.ndarray_from_qimage(canvas).copy()


def _labels(ct: np.ndarray) -> np.ndarray:
    lab = np.zeros(ct.shape, np.uint8)
    lab[(ct > -900) & (ct < -400)] = 1
    lab[ct > 200] = 2
    lab[(ct > 0) & (ct < 60)] = 3
    return lab


@pytest.mark.parametrize("lut", [None, GREY, GREY[::-1].copy()], ids=["none", "grey", "inverted"])
@pytest.mark.parametrize("window", [(-600, 1500), (40, 400), (300, 1)], ids=["lung", "soft", "narrow"])
def test_ct_slices_paint_like_pyqtgraph(chest_volume, lut, window):
    arr = chest_volume.array.astype(np.int16)
    levels = window_to_levels(*window)
    r = Reslicer(chest_volume.geometry)
    for plane in ("axial", "sagittal"):  # a view and a strided (negative-stride) slice
        img = r.extract(arr, plane, r.n_slices(plane) // 2).image
        ours = _painted(WindowedImageItem, img, levels, lut)
        theirs = _painted(pg.ImageItem, img, levels, lut)
        np.testing.assert_array_equal(ours, theirs)
        assert len(np.unique(ours[..., 0])) > 2 or window == (300, 1)  # a real image, not flat


def test_uint16_and_label_slices_paint_like_pyqtgraph(chest_volume):
    arr = chest_volume.array.astype(np.int16)
    img = arr[arr.shape[0] // 2]
    u16 = (img.astype(np.int32) + 2048).clip(0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(_painted(WindowedImageItem, u16, (1000, 3000), GREY),
                                  _painted(pg.ImageItem, u16, (1000, 3000), GREY))
    lab = _labels(img)
    for n, opacity in ((3, 0.5), (3, 1.0), (7, 0.3)):
        lut = label_lut(n, opacity)
        ours = _painted(WindowedImageItem, lab, (0, n), lut)
        np.testing.assert_array_equal(ours, _painted(pg.ImageItem, lab, (0, n), lut))
    assert len({tuple(px) for px in ours.reshape(-1, 4)[::97]}) >= 3  # colours, not just grey


def test_other_images_take_pyqtgraph_path(chest_volume):
    img = chest_volume.array[chest_volume.shape[0] // 2].astype(np.float32)
    item = WindowedImageItem(axisOrder="row-major")
    item.setImage(img, autoLevels=False, levels=(-1000, 1000))
    item.render()
    assert item._buffer is None and item.qimage is not None
    np.testing.assert_array_equal(_painted(WindowedImageItem, img, (-1000, 1000), GREY),
                                  _painted(pg.ImageItem, img, (-1000, 1000), GREY))


def test_sagittal_view_from_blocks_follows_window_and_label_edits(qtbot, window, chest_volume):
    from medviewer.core.overlay import LabelOverlay

    ses = window.session
    ses.add_volume(chest_volume)
    labels = _labels(chest_volume.array)
    ses.set_overlay(LabelOverlay(labels))
    sa = window.tri.views["sagittal"]
    r = sa.reslicer
    assert sa._image_slabs.worthwhile(chest_volume.array, r.fixed_axis("sagittal"))
    for x in range(200, 240, 3):  # step through sagittal slices (served from blocks)
        idx = list(ses.cursor_zyx)
        idx[2] = x
        ses.set_cursor_index(idx)
        np.testing.assert_array_equal(sa.image_item.image, r.extract(chest_volume.array, "sagittal", x).image)
        np.testing.assert_array_equal(sa.overlay_item.image, r.extract(labels, "sagittal", x).image)
    assert sa._image_slabs._blocks and sa._label_slabs._blocks
    # an edit of a slice in a cached block that is not shown: the view shows it when it gets there
    x = sa.current.index
    labels[:, 100:140, x + 1] = 5
    edit = np.ravel_multi_index(np.nonzero(labels == 5), labels.shape)
    sa.refresh_overlay(edit)
    idx = list(ses.cursor_zyx)
    idx[2] = x + 1
    ses.set_cursor_index(idx)
    assert (sa.overlay_item.image == 5).sum() == 40 * labels.shape[0]
    np.testing.assert_array_equal(sa.overlay_item.image, r.extract(labels, "sagittal", x + 1).image)
    # a window change re-colours the same slice
    ses.set_window(40, 400)
    assert tuple(sa.image_item.getLevels()) == pytest.approx(window_to_levels(40, 400))
    sa.image_item.render()
    shown = pg.functions.ndarray_from_qimage(sa.image_item.qimage).copy()
    ref = pg.ImageItem(axisOrder="row-major")
    ref.setLookupTable(sa.image_item.lut)
    ref.setImage(sa.image_item.image, autoLevels=False, levels=window_to_levels(40, 400))
    ref.render()
    rgb32 = ref.qimage.convertToFormat(QImage.Format.Format_RGB32)
    expect = pg.functions.ndarray_from_qimage(rgb32).copy()
    np.testing.assert_array_equal(shown[..., :3], expect[..., :3])


def test_a_new_lookup_table_is_used_even_at_a_reused_address(chest_volume):
    lab = _labels(chest_volume.array[chest_volume.shape[0] // 2].astype(np.int16))
    item = WindowedImageItem(axisOrder="row-major")
    for opacity in (0.5, 0.9, 0.2, 0.9, 0.5):  # each a fresh array; freed addresses come back
        lut = label_lut(3, opacity)
        want = int(lut[1:, 3].max())
        item.setLookupTable(lut)
        item.setImage(lab, autoLevels=False, levels=(0, 3))
        del lut
        item.render()
        shown = pg.functions.ndarray_from_qimage(item.qimage)
        assert int(shown[..., 3].max()) == want  # this opacity, not a stale table's
