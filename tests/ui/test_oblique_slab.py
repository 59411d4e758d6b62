"""Thick slabs and oblique MPR in the tri-planar window (issue 14 §3), on the real chest CT."""
import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QAction

from medviewer.core.reformat import slab_count


def _slab_ref(vol, view, mode_fn, mm):
    """numpy over the slices the slab covers, shown like the view's thin slice."""
    r = view.reslicer
    fixed = r.fixed_axis(view.plane)
    n = slab_count(mm, vol.geometry.spacing[2 - fixed])
    k = view.current.index
    first = max(0, k - (n - 1) // 2)
    sub = np.take(vol.array, range(first, min(vol.shape[fixed], k - (n - 1) // 2 + n)), axis=fixed)
    return r.extract(np.expand_dims(mode_fn(sub, axis=fixed), fixed), view.plane, 0).image


def test_slab_controls_change_every_plane(chest_window, chest_volume):
    win = chest_window
    win.slab_mode_box.setCurrentIndex(win.slab_mode_box.findData("mip"))
    win.slab_mm_box.setValue(10.0)
    for plane, view in win.tri.views.items():
        np.testing.assert_array_equal(view.current.image, _slab_ref(chest_volume, view, np.max, 10.0))
        assert view.label("info_br").text().splitlines()[-1] == "Slab MIP 10 mm"
    win.slab_mode_box.setCurrentIndex(win.slab_mode_box.findData("minip"))
    ax = win.tri.views["axial"]
    np.testing.assert_array_equal(ax.current.image, _slab_ref(chest_volume, ax, np.min, 10.0))
    win.session.set_cursor_index((20, 256, 256))  # a new slice: the slab follows it
    assert ax.current.index == 20
    np.testing.assert_array_equal(ax.current.image, _slab_ref(chest_volume, ax, np.min, 10.0))
    win.findChild(QAction, "action_slab_20mm").trigger()  # View > Slab > 20 mm
    assert win.slab_mm_box.value() == 20.0 and win.findChild(QAction, "action_slab_minip").isChecked()
    assert ax.label("info_br").text().splitlines()[-1] == "Slab MinIP 20 mm"
    win.findChild(QAction, "action_slab_average").trigger()
    assert win.slab_mode_box.currentData() == "average"
    np.testing.assert_allclose(ax.current.image, _slab_ref(chest_volume, ax, np.mean, 20.0), atol=1e-3)
    win.slab_mm_box.setValue(0.0)  # thin
    assert win.slab_mm_box.text() == "thin" and win.findChild(QAction, "action_slab_0mm").isChecked()
    np.testing.assert_array_equal(ax.current.image, ax.reslicer.extract(chest_volume.array, "axial", 20).image)
    assert ax.label("info_br").text().splitlines()[-1].startswith("Thk 2.5 mm")


def _turn(view, degrees):
    """Ctrl + left drag in ``view`` turning the mouse ``degrees`` about the crosshair centre."""
    c = view.crosshair_centre()
    r = 60.0
    p0 = QPointF(c.x() + r, c.y())
    t = math.radians(degrees)
    p1 = QPointF(c.x() + r * math.cos(t), c.y() + r * math.sin(t))
    view._on_rotate_drag("press", p0)
    view._on_rotate_drag("drag", p1)
    view._on_rotate_drag("release", p1)


def _slabs_shown(qtbot, views):
    """Wait for the slabs that the views' worker computes (more than a few new planes)."""
    qtbot.waitUntil(lambda: not any(v.slab_pending for v in views.values()), timeout=20000)


def test_ctrl_drag_rotates_the_other_planes_and_reset_goes_back(qtbot, chest_window, chest_volume):
    win = chest_window
    views = win.tri.views
    win.session.set_cursor_index((50, 240, 270))
    before = {p: v.current.image.copy() for p, v in views.items()}
    _turn(views["axial"], 30)
    frame = win.tri.mpr.frame
    assert frame is not None and not frame.is_identity
    ax, co, sa = views["axial"], views["coronal"], views["sagittal"]
    # the axial picture keeps still; its crosshair lines turn by the drag
    np.testing.assert_allclose(ax.current.image, before["axial"], atol=1e-3)
    assert abs(ax.hline.angle) == pytest.approx(30.0, abs=1e-6)
    assert abs(ax.vline.angle) == pytest.approx(60.0, abs=1e-6)
    # the other views show the rotated planes through the cursor
    cursor = chest_volume.geometry.index_zyx_to_lps(win.session.cursor_zyx)
    for v in (co, sa):
        assert not np.allclose(v.current.image[:100], before[v.plane][:100])
        np.testing.assert_allclose(v.current.image, frame.image(chest_volume.array, v.plane, cursor,
                                                                fill=float(chest_volume.array.min())))
        assert v.label("info_br").text().splitlines()[0] == "Oblique"
    assert (co.label("left").text(), co.label("right").text()) != ("R", "L")
    # a click in the oblique coronal view moves the cursor onto a point of that plane
    co._on_left("click", QPointF(200.0, 80.0))
    lps = chest_volume.geometry.index_zyx_to_lps(win.session.cursor_zyx)
    y, x, depth = frame.view_of("coronal", lps)
    assert (y, x) == pytest.approx((80.0, 200.0), abs=1.5) and abs(depth - co._depth) < 1.5
    # the next image of an oblique plane is one voxel step along its normal
    co.step_slice(4)
    moved = chest_volume.geometry.index_zyx_to_lps(win.session.cursor_zyx) - lps
    n = frame.axes("coronal")[:, 2]
    assert abs(moved @ n) == pytest.approx(4 * frame.normal_step("coronal"), abs=1.5)
    assert np.linalg.norm(moved - (moved @ n) * n) < 1.5
    # slab on the oblique planes too
    win.slab_mm_box.setValue(5.0)
    assert sa.label("info_br").text().splitlines() == ["Oblique", "Slab MIP 5 mm"]
    _slabs_shown(qtbot, views)
    cur = chest_volume.geometry.index_zyx_to_lps(win.session.cursor_zyx)
    fill = float(chest_volume.array.min())
    slab_sa = frame.image(chest_volume.array, "sagittal", cur, 5.0, "mip", fill=fill)
    np.testing.assert_allclose(sa.current.image, slab_sa)
    # while a drag turns the planes the other views show thin planes, the slab again after
    c = co.crosshair_centre()
    co._on_rotate_drag("press", QPointF(c.x() + 50, c.y()))
    co._on_rotate_drag("drag", QPointF(c.x() + 50, c.y() + 20))
    cur = chest_volume.geometry.index_zyx_to_lps(win.session.cursor_zyx)
    np.testing.assert_allclose(sa.current.image, frame.image(chest_volume.array, "sagittal", cur, fill=fill))
    co._on_rotate_drag("release", QPointF(c.x() + 50, c.y() + 20))
    _slabs_shown(qtbot, views)
    np.testing.assert_allclose(sa.current.image, frame.image(chest_volume.array, "sagittal", cur, 5.0, "mip",
                                                             fill=fill))
    assert not np.allclose(sa.current.image, slab_sa)  # turned
    # reset obliques: the orthogonal planes again
    win.actions_by_name["reset_obliques"].trigger()
    assert win.tri.mpr.frame is None
    win.slab_mm_box.setValue(0.0)
    for p, v in views.items():
        idx = v.reslicer.slice_index(p, win.session.cursor_zyx)
        np.testing.assert_array_equal(v.current.image, v.reslicer.extract(chest_volume.array, p, idx).image)
    assert (ax.hline.angle, ax.vline.angle) == (0, 90)
    assert (co.label("left").text(), co.label("right").text()) == ("R", "L")


def test_slice_layers_hide_on_oblique_planes_and_come_back(chest_window, chest_volume):
    from medviewer.ui.slice_layer import SliceLayer

    class Bright(SliceLayer):  # a layer of the orthogonal slice: voxels above 300 HU
        def update(self):
            v = self.view
            img = v.reslicer.extract(chest_volume.array > 300, v.plane, v.current.index).image
            key = v.current.index
            if not self._is_shown(key):
                self._show(img.astype(np.float32), key, (0, 1))

    co = chest_window.tri.views["coronal"]
    layer = Bright(co, "bright", 6)
    layer.update()
    assert layer.shown_image() is not None
    chest_window.tri.rotate("axial", math.radians(15))
    assert layer.shown_image() is None  # its data would not lie on the oblique plane
    chest_window.tri.reset_obliques()
    assert layer.shown_image() is not None and layer.shown_image().shape == co.current.image.shape


def test_ctrl_drag_with_real_mouse_events_turns_the_crosshair(chest_window):
    from PySide6.QtCore import Qt

    from annot_helpers import drag

    ax = chest_window.tri.views["axial"]
    before = ax.current.image.copy()
    c = ax.crosshair_centre()
    r = 80.0  # mm
    arc = [QPointF(c.x() + r * math.cos(math.radians(a)), c.y() + r * math.sin(math.radians(a)))
           for a in range(0, 41, 5)]
    pts = [ax.mapFromScene(ax.vb.mapViewToScene(p)) for p in arc]
    drag(ax.viewport(), pts, modifiers=Qt.KeyboardModifier.ControlModifier)
    assert chest_window.tri.mpr.frame is not None
    assert abs(ax.hline.angle) == pytest.approx(40.0, abs=2.0)  # the line followed the mouse
    np.testing.assert_allclose(ax.current.image, before, atol=1e-3)
    assert chest_window.session.cursor_zyx == (50, 256, 256)  # a Ctrl drag never moves the cursor
    # a plain drag still moves the cursor
    drag(ax.viewport(), pts[:3])
    assert chest_window.session.cursor_zyx != (50, 256, 256)


def test_thick_oblique_slab_comes_from_the_worker_newest_request_first(qtbot, chest_window, chest_volume):
    win, g = chest_window, chest_volume.geometry
    views = win.tri.views
    ax = views["axial"]
    fill = float(chest_volume.array.min())
    win.session.set_cursor_index((50, 256, 256))
    win.tri.rotate("coronal", math.radians(20))
    frame = win.tri.mpr.frame
    thin = ax.current.image.copy()
    win.slab_mm_box.setValue(40.0)  # 21 planes along the tilted axial normal: the worker's
    assert ax.slab_pending
    np.testing.assert_array_equal(ax.current.image, thin)  # the last picture until then
    win.session.set_cursor_index((60, 250, 256))  # two newer requests while it runs
    win.session.set_cursor_index((40, 250, 256))
    _slabs_shown(qtbot, views)
    cur = g.index_zyx_to_lps(win.session.cursor_zyx)
    np.testing.assert_array_equal(ax.current.image, frame.image(chest_volume.array, "axial", cur, 40.0, "mip", fill=fill))
    assert ax.current.image.shape == (512, 512)
    # the wheel: each step moves the slab by exactly one plane (the one new plane sampled at
    # once), centred within the voxel rounding of the cursor's depth
    step = frame.normal_step("axial")
    stack = frame.planes("axial")
    for steps in (1, 1, -1, 2, 1, 1):
        before = ax.slab_depth
        ax.step_slice(steps)
        assert not ax.slab_pending
        assert abs(abs(ax.slab_depth - before) - abs(steps) * step) < 1e-9
        cursor_depth = frame.view_of("axial", g.index_zyx_to_lps(win.session.cursor_zyx))[2]
        assert abs(ax.slab_depth - cursor_depth) < 1.6  # half a voxel's diagonal, along the normal
        np.testing.assert_array_equal(ax.current.image, stack.image(
            chest_volume.array, frame.slab_depths("axial", ax.slab_depth, 40.0), "mip", fill=fill))
    win.session.set_cursor_index((45, 250, 256))  # a click elsewhere: the slab follows the cursor
    _slabs_shown(qtbot, views)
    cur = g.index_zyx_to_lps(win.session.cursor_zyx)
    assert ax.slab_depth == pytest.approx(frame.view_of("axial", cur)[2])
    np.testing.assert_array_equal(ax.current.image, frame.image(chest_volume.array, "axial", cur, 40.0, "mip", fill=fill))



def test_an_oblique_slab_of_more_planes_than_kept_comes_whole_from_the_worker(qtbot, chest_window, chest_volume):
    win, g = chest_window, chest_volume.geometry
    co = win.tri.views["coronal"]
    fill = float(chest_volume.array.min())
    win.session.set_cursor_index((50, 256, 256))
    win.tri.rotate("axial", math.radians(15))
    win.slab_mode_box.setCurrentIndex(win.slab_mode_box.findData("average"))
    win.slab_mm_box.setValue(80.0)  # 89 planes 0.9 mm apart: more than a view keeps
    frame = win.tri.mpr.frame
    assert len(frame.slab_depths("coronal", co.slab_depth, 80.0)) > co._slab_planes.keep
    assert co.slab_pending
    _slabs_shown(qtbot, win.tri.views)
    cur = g.index_zyx_to_lps(win.session.cursor_zyx)
    np.testing.assert_array_equal(co.current.image,
                                  frame.image(chest_volume.array, "coronal", cur, 80.0, "average", fill=fill))
    co.step_slice(1)  # each step: the whole slab again, on the worker
    assert co.slab_pending
    _slabs_shown(qtbot, win.tri.views)
    np.testing.assert_array_equal(co.current.image, frame.planes("coronal").image(
        chest_volume.array, frame.slab_depths("coronal", co.slab_depth, 80.0), "average", fill=fill))


def test_back_to_orthogonal_planes_while_a_slab_is_on_the_worker(qtbot, chest_window, chest_volume):
    from medviewer.core.reformat import ortho_slab

    win = chest_window
    ax = win.tri.views["axial"]
    win.session.set_cursor_index((50, 256, 256))
    win.tri.rotate("coronal", math.radians(20))
    win.slab_mm_box.setValue(40.0)
    assert ax.slab_pending
    win.tri.reset_obliques()  # before the worker is done: its slab must not land on the axial plane
    assert not ax.slab_pending
    qtbot.wait(1500)  # the worker's (cancelled or dropped) result has had time to come back
    want = ortho_slab(ax.reslicer, chest_volume.array, "axial", 50, 40.0, "mip").image
    np.testing.assert_array_equal(ax.current.image, want)
