"""Linked slice views: crosshair clicks, scrolling, presets, readout, MONOCHROME1, tools."""
import numpy as np
import pydicom
import pydicom.data
import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt

from medviewer.core.windowing import CT_PRESETS, window_to_levels


def _viewport_pos(view, row, col) -> QPoint:
    """Widget (viewport) position of a display pixel of a SliceView."""
    scene = view.vb.mapViewToScene(view.display_to_view(row, col))
    return view.mapFromScene(scene)


def test_click_in_axial_moves_other_views(qtbot, chest_window):
    ses, views = chest_window.session, chest_window.tri.views
    ax, co, sa = views["axial"], views["coronal"], views["sagittal"]
    assert ax.slice_index == 50 and co.slice_index == 256 and sa.slice_index == 256
    pos = _viewport_pos(ax, 100, 400)
    row, col = ax.view_to_display(ax.vb.mapSceneToView(ax.mapToScene(pos)))
    qtbot.mouseClick(ax.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    z, y, x = ses.cursor_zyx
    assert (z, y, x) == (50, round(row), round(col)) and abs(y - 100) <= 1 and abs(x - 400) <= 1
    assert co.slice_index == y and sa.slice_index == x  # the other planes followed
    # the crosshair of the coronal view moved to the new x (column) in mm
    assert co.vline.value() == pytest.approx(x * co.current.col_spacing)
    # session -> widget: setting the cursor moves the axial slice
    ses.set_cursor_index((10, y, x))
    assert ax.slice_index == 10
    # no InstanceNumbers in this fixture: the position counted head to feet (z 10 of 0..99
    # from the feet is the 90th slice from the head)
    assert ax.label("title").text().startswith("Axial  Sl 90/100")


def test_click_in_coronal_changes_axial_slice(qtbot, chest_window):
    co, ax = chest_window.tri.views["coronal"], chest_window.tri.views["axial"]
    assert co.current.image.shape == (100, 512)
    pos = _viewport_pos(co, 10, 256)
    row, _ = co.view_to_display(co.vb.mapSceneToView(co.mapToScene(pos)))
    assert abs(row - 10) < 1
    qtbot.mouseClick(co.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    # coronal rows count down from the top (superior); z grows towards S, so z = 99 - row
    assert ax.slice_index == 99 - round(row)


def test_wheel_and_keys_change_slice(qtbot, chest_window):
    ax = chest_window.tri.views["axial"]
    start = ax.slice_index
    ax.setFocus()
    # next image = towards the feet; z grows towards the head here
    qtbot.keyClick(ax, Qt.Key.Key_PageDown)
    assert ax.slice_index == start - 1 and chest_window.session.cursor_zyx[0] == start - 1
    qtbot.keyClick(ax, Qt.Key.Key_Up)
    qtbot.keyClick(ax, Qt.Key.Key_Up)
    assert ax.slice_index == start + 1
    # a real wheel event on the viewport: two notches towards the user = two images on
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    pos = QPointF(_viewport_pos(ax, 256, 256))
    ev = QWheelEvent(pos, QPointF(ax.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, -240),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(ax.viewport(), ev)
    assert ax.slice_index == start - 1


def test_preset_changes_image_levels(qtbot, chest_window):
    ax = chest_window.tri.views["axial"]
    assert tuple(ax.image_item.getLevels()) == pytest.approx(window_to_levels(-700, 1500))  # series own
    combo = chest_window.presets
    combo.setCurrentText("CT Bone")
    assert chest_window.session.window == CT_PRESETS["CT Bone"]
    for view in chest_window.tri.views.values():
        assert tuple(view.image_item.getLevels()) == pytest.approx(window_to_levels(*CT_PRESETS["CT Bone"]))
    act = next(a for a in combo.menu.actions() if a.text() == "CT Brain")
    act.trigger()
    assert tuple(ax.image_item.getLevels()) == pytest.approx((0.0, 80.0))
    assert combo.currentText() == "CT Brain"


def test_right_drag_changes_window(qtbot, chest_window):
    c0, w0 = chest_window.session.window
    chest_window._on_wl_drag(30.0, -15.0)  # what a right drag emits
    c1, w1 = chest_window.session.window
    assert w1 > w0 and c1 < c0
    assert chest_window.presets.currentText() == "Custom"


def test_readout_shows_hu_of_the_voxel(qtbot, chest_window, chest_volume):
    ax = chest_window.tri.views["axial"]
    z, y, x = 50, 300, 200
    chest_window.session.set_cursor_index((z, 256, 256))
    # zoom in around the voxel so that one screen pixel cannot straddle two voxels
    cs, rs = ax.current.col_spacing, ax.current.row_spacing
    ax.vb.setRange(QRectF((x - 20) * cs, (y - 20) * rs, 40 * cs, 40 * rs), padding=0)
    qtbot.wait(10)
    qtbot.mouseMove(ax.viewport(), _viewport_pos(ax, y, x))
    qtbot.waitUntil(lambda: "voxel" in ax.label("readout").text())
    text = ax.label("readout").text()
    ds = pydicom.dcmread(chest_volume.source_paths[z])
    hu = float(ds.pixel_array[y, x]) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert f"(x {x}, y {y}, z {z})" in text
    assert f"value {hu:.6g} HU" in text
    lps = np.asarray(ds.ImagePositionPatient, float) + x * float(ds.PixelSpacing[1]) * np.array([1, 0, 0]) \
        + y * float(ds.PixelSpacing[0]) * np.array([0, 1, 0])
    full = chest_window.readout.full_text()  # the status bar has the full readout (tooltip)
    assert f"(x {x}, y {y}, z {z})" in full and f"value {hu:.6g} HU" in full
    assert f"LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm" in full


def test_monochrome1_is_shown_inverted(qtbot, window, mono1_volume):
    window.session.add_volume(mono1_volume)
    view = window.tri.views["axial"]
    img = view.current.image
    lo, hi = float(img.min()), float(img.max())
    window.session.set_window((lo + hi) / 2, hi - lo)
    view.image_item.render()
    q = view.image_item.qimage
    r_hi, c_hi = np.unravel_index(np.argmax(img), img.shape)
    r_lo, c_lo = np.unravel_index(np.argmin(img), img.shape)
    bright_value_pixel = q.pixelColor(int(c_hi), int(r_hi)).lightness()
    dark_value_pixel = q.pixelColor(int(c_lo), int(r_lo)).lightness()
    assert bright_value_pixel < 30 and dark_value_pixel > 225


def test_distance_tool_measures_mm(qtbot, chest_window):
    chest_window.set_tool("distance")
    ax = chest_window.tri.views["axial"]
    a, b = _viewport_pos(ax, 100, 100), _viewport_pos(ax, 100, 400)
    qtbot.mouseClick(ax.viewport(), Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseClick(ax.viewport(), Qt.MouseButton.LeftButton, pos=b)
    assert len(ax.overlay.measurements) == 1
    m = ax.overlay.measurements[0]
    p0, p1 = ax.view_to_index(ax.vb.mapSceneToView(ax.mapToScene(a))), ax.view_to_index(ax.vb.mapSceneToView(ax.mapToScene(b)))
    expected = abs(p1[2] - p0[2]) * 0.898438
    assert m.value == pytest.approx(expected, rel=1e-6)
    assert m.value == pytest.approx(300 * 0.898438, abs=2.0)  # ~300 pixels apart
    assert m.text.endswith("mm")
    assert chest_window.session.cursor_zyx == (50, 256, 256)  # tool clicks don't move the cursor


def test_roi_stats_equal_numpy(qtbot, chest_window, chest_volume):
    chest_window.set_tool("roi_rect")
    ax = chest_window.tri.views["axial"]
    ax.overlay.handle("roi_rect", "press", ax.display_to_view(200, 150))
    ax.overlay.handle("roi_rect", "drag", ax.display_to_view(230, 170))
    ax.overlay.handle("roi_rect", "release", ax.display_to_view(240, 180))
    s = ax.overlay.measurements[-1].value
    ref = chest_volume.array[50, 200:241, 150:181].astype(float)
    assert s.n_pixels == ref.size
    assert (s.mean, s.sd, s.min, s.max) == pytest.approx((ref.mean(), ref.std(), ref.min(), ref.max()))
    assert s.area_mm2 == pytest.approx(ref.size * 0.898438 ** 2, rel=1e-5)
    # measurements belong to their slice
    ax.step_slice(1)
    assert not ax.overlay.measurements[-1].items[0].isVisible()


def test_layouts_and_shortcuts_dialog(qtbot, chest_window):
    chest_window.set_layout("coronal")
    views = chest_window.tri.views
    assert views["coronal"].isVisible() and not views["axial"].isVisible()
    chest_window.actions_by_name["layout_tri"].trigger()
    assert all(v.isVisible() for v in views.values())
    chest_window.show_shortcuts()
    from medviewer.ui.shortcuts import ShortcutsDialog

    dlg = chest_window.findChild(ShortcutsDialog, "shortcutsDialog")
    assert dlg is not None and dlg.findChild(object, "shortcutsTable").rowCount() > 20
    dlg.close()


def test_rgb_volume_is_shown_in_colour(qtbot, window):
    from medviewer.io.load import open_first

    vol = open_first([pydicom.data.get_testdata_file("SC_rgb.dcm")])
    assert vol.is_rgb
    window.session.add_volume(vol)
    view = window.tri.views["axial"]
    view.image_item.render()
    q = view.image_item.qimage
    img = view.current.image
    for r, c in [(5, 5), (img.shape[0] // 2, img.shape[1] // 2), (img.shape[0] - 3, 2)]:
        col = q.pixelColor(c, r)
        assert (col.red(), col.green(), col.blue()) == tuple(int(v) for v in img[r, c])
    assert "RGB (" in view.readout_at(view.display_to_view(5, 5))


def _drag(widget, button, start: QPoint, end: QPoint, steps: int = 6):
    """A real press / move (button held) / release sequence on a widget.

    pyqtgraph drops move events closer than 10 ms (mouseRateLimit), so the moves are paced."""
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    def send(kind, pos, buttons):
        p = QPointF(pos)
        ev = QMouseEvent(kind, p, QPointF(widget.mapToGlobal(pos)), button, buttons,
                         Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, ev)

    send(QEvent.Type.MouseButtonPress, start, button)
    for i in range(1, steps + 1):
        QTest.qWait(15)
        send(QEvent.Type.MouseMove, start + (end - start) * i / steps, button)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_real_right_drag_changes_window_and_left_drag_measures(qtbot, chest_window):
    ax = chest_window.tri.views["axial"]
    c0, w0 = chest_window.session.window
    start = _viewport_pos(ax, 256, 256)
    _drag(ax.viewport(), Qt.MouseButton.RightButton, start, start + QPoint(60, 0))
    c1, w1 = chest_window.session.window
    assert w1 > w0 and c1 == c0  # horizontal drag = width only
    assert tuple(ax.image_item.getLevels()) == pytest.approx(window_to_levels(c1, w1))
    chest_window.set_tool("distance")
    a, b = _viewport_pos(ax, 100, 100), _viewport_pos(ax, 100, 300)
    _drag(ax.viewport(), Qt.MouseButton.LeftButton, a, b)
    assert len(ax.overlay.measurements) == 1
    assert ax.overlay.measurements[0].value == pytest.approx(200 * 0.898438, abs=3.0)


def test_drop_files_opens_them(qtbot, window):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(pydicom.data.get_testdata_file("CT_small.dcm"))])
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.loader.sig_finished, timeout=30000):
        window.dropEvent(ev)
    assert window.session.active is not None and window.session.active.modality == "CT"


def test_2d_image_gets_single_view_without_changing_the_saved_layout(qtbot, window, mono1_volume,
                                                                     chest_volume):
    assert window.tri.layout_name == "tri"
    window.session.add_volume(mono1_volume)  # a lone chest radiograph
    assert window.tri.layout_name == "axial"
    assert window.tri.views["axial"].label("title").text().startswith("Image  1/1")
    assert str(window.settings.value("view/layout", "tri")) == "tri"  # not the user's choice
    window.session.add_volume(chest_volume)  # the next 3D volume gets the tri-planar view back
    assert window.tri.layout_name == "tri"
    assert window.tri.views["axial"].label("title").text().startswith("Axial")


def test_2d_image_opens_in_its_own_plane_from_any_single_layout(qtbot, window, mono1_volume):
    window.set_layout("coronal")  # the user's saved choice
    window.session.add_volume(mono1_volume)
    assert window.tri.layout_name == "axial"  # the radiograph's own plane, not a black cut
    assert str(window.settings.value("view/layout")) == "coronal"


def test_layout_switch_keeps_slice_keys_on_a_visible_view(qtbot, chest_window):
    from PySide6.QtWidgets import QApplication

    ax = chest_window.tri.views["axial"]
    ax.setFocus()
    qtbot.keyClick(ax, Qt.Key.Key_2)  # coronal only: the focused axial view is hidden
    co = chest_window.tri.views["coronal"]
    assert chest_window.tri.layout_name == "coronal"
    assert QApplication.focusWidget() is co
    start = co.slice_index
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_PageDown)
    assert co.slice_index == start + 1


def test_triplanar_cells_are_equal_whatever_the_info_text(qtbot, chest_window):
    views = chest_window.tri.views
    chest_window.tri.info.setText("a very long warning " * 40)
    qtbot.wait(20)
    widths = [views["axial"].width(), views["sagittal"].width()]
    assert abs(widths[0] - widths[1]) <= 4, widths


def test_readout_follows_slice_changes_without_mouse_moves(qtbot, chest_window, chest_volume):
    ax = chest_window.tri.views["axial"]
    cs, rs = ax.current.col_spacing, ax.current.row_spacing
    ax.vb.setRange(QRectF(180 * cs, 280 * rs, 40 * cs, 40 * rs), padding=0)
    qtbot.wait(10)
    qtbot.mouseMove(ax.viewport(), QPoint(3, 3))  # Qt sends no move to where the pointer is
    qtbot.wait(20)  # pyqtgraph drops moves less than 10 ms apart
    qtbot.mouseMove(ax.viewport(), _viewport_pos(ax, 300, 200))
    qtbot.waitUntil(lambda: "(x 200, y 300, z 50)" in ax.label("readout").text(), timeout=2000)
    ax.setFocus()
    qtbot.keyClick(ax, Qt.Key.Key_PageUp)  # the mouse stays put, the slice changes (to the head)
    text = ax.label("readout").text()
    assert "z 51" in text
    ds = pydicom.dcmread(chest_volume.source_paths[51])
    hu = float(ds.pixel_array[300, 200]) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert f"{hu:.6g} HU" in text


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_single_view_fills_the_view_area(qtbot, chest_window, plane):
    tri = chest_window.tri
    chest_window.set_layout(plane)
    qtbot.wait(20)
    view = tri.views[plane]
    assert view.width() >= tri.width() - 8 and view.height() >= tri.height() - 8
    chest_window.set_layout("tri")
    qtbot.wait(20)
    assert abs(tri.views["axial"].width() - tri.views["sagittal"].width()) <= 4
    assert tri.views["axial"].width() < tri.width() * 0.6
