"""Paint tools through real mouse events and shortcuts on the real chest CT."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from scipy import ndimage

from annot_helpers import click, drag, index_at, line, rendered_rgb, viewport_pos

SP = 0.898438  # in-plane pixel size of the chest CT (mm); slices are 2.5 mm apart


def _disc(cy, cx, r_mm, shape=(512, 512)):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return ((yy - cy) * SP) ** 2 + ((xx - cx) * SP) ** 2 <= r_mm ** 2 + 1e-9


def _dist_to_segment_mm(a, b, shape=(512, 512)):
    """Distance (mm) of every pixel centre of an axial slice to the segment a-b (y, x)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    p = np.stack([yy * SP, xx * SP], -1)
    a, b = np.asarray(a, float) * SP, np.asarray(b, float) * SP
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def test_brush_click_is_a_disc_of_the_radius_in_mm(qtbot, annot):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    annot.set_tool("brush")
    annot.annotation.options.set(radius_mm=6.0)
    pos = viewport_pos(ax, 200, 300)
    click(ax.viewport(), pos)
    _, cy, cx = np.round(index_at(ax, pos)).astype(int)
    labels = ctl.labelmap.labels
    assert set(np.flatnonzero(labels.reshape(100, -1).any(axis=1))) == {50}
    np.testing.assert_array_equal(labels[50] == 1, _disc(cy, cx, 6.0))
    assert (labels[50] == 1).sum() == pytest.approx(np.pi * 6.0 ** 2 / SP ** 2, rel=0.08)


def test_brush_drag_paints_the_stroke_and_every_plane_shows_it(qtbot, annot):
    ctl, views = annot.annotation.ctl, annot.tri.views
    ax, co, sa = views["axial"], views["coronal"], views["sagittal"]
    annot.set_tool("brush")
    annot.annotation.options.set(radius_mm=4.0)
    a, b = viewport_pos(ax, 256, 200), viewport_pos(ax, 256, 300)  # crosses the crosshair (256, 256)
    drag(ax.viewport(), line(a, b, 8))
    labels = ctl.labelmap.labels
    assert set(np.unique(labels)) == {0, 1}
    assert np.flatnonzero(labels.reshape(100, -1).any(axis=1)).tolist() == [50]
    d = _dist_to_segment_mm(index_at(ax, a)[1:], index_at(ax, b)[1:])
    painted = labels[50] == 1
    assert d[painted].max() <= 4.0 + 0.65  # nothing outside radius (+ rounding to a voxel)
    assert painted[d <= 4.0 - 1.0].all()  # everything well inside is painted
    assert len(ctl.undo_stack) == 1  # one stroke = one undo step
    # every plane shows the stroke without any cursor move (incremental refresh)
    for view in views.values():
        np.testing.assert_array_equal(view.overlay_item.image,
                                      view.reslicer.extract(labels, view.plane, view.current.index).image)
    assert (co.overlay_item.image[99 - 50] == 1).sum() > 50  # coronal y=256: row of z=50
    assert (sa.overlay_item.image[99 - 50] == 1).sum() >= 8  # sagittal x=256: ~9 voxels across
    # and it is drawn in the label's colour (label 1 is red) on the axial view
    rgb = rendered_rgb(ax)
    px = viewport_pos(ax, 259, 230)  # beside the crosshair line on row 256
    r, g, bl = rgb[px.y(), px.x()]
    assert r > g + 40 and r > bl + 30


def test_eraser_and_radius_keys_and_cursor_circle(qtbot, annot):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    opts = annot.annotation.options
    annot.set_tool("brush")
    opts.set(radius_mm=5.0)
    ax.setFocus()
    qtbot.keyClick(ax, Qt.Key.Key_BracketRight)
    assert opts.radius_mm == 6.0
    qtbot.keyClick(ax, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(ax, Qt.Key.Key_BracketLeft)
    assert opts.radius_mm == 4.0
    assert annot.annotation.paint_panel.radius.value() == 4.0
    qtbot.mouseMove(ax.viewport(), viewport_pos(ax, 100, 100))
    qtbot.waitUntil(lambda: ax.paint.cursor.isVisible())
    assert ax.paint.cursor.rect().width() == pytest.approx(8.0)  # diameter in mm (view units)
    qtbot.keyClick(ax, Qt.Key.Key_BracketRight)
    assert ax.paint.cursor.rect().width() == pytest.approx(10.0)

    opts.set(radius_mm=8.0)
    drag(ax.viewport(), line(viewport_pos(ax, 300, 150), viewport_pos(ax, 300, 350), 8))
    before = ctl.labelmap.labels[50].copy()
    annot.set_tool("eraser")
    qtbot.keyClick(ax, Qt.Key.Key_BracketLeft)  # 7 mm
    e0, e1 = viewport_pos(ax, 300, 220), viewport_pos(ax, 300, 280)
    drag(ax.viewport(), line(e0, e1, 6))
    after = ctl.labelmap.labels[50]
    erased = (before == 1) & (after == 0)
    assert erased.sum() > 200 and not ((before == 0) & (after != 0)).any()
    d = _dist_to_segment_mm(index_at(ax, e0)[1:], index_at(ax, e1)[1:])
    assert d[erased].max() <= 7.0 + 0.65
    assert ctl.undo_stack.peek_undo().tool == "eraser"


def test_undo_redo_through_the_shortcuts(qtbot, annot):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    annot.set_tool("brush")
    drag(ax.viewport(), line(viewport_pos(ax, 150, 150), viewport_pos(ax, 150, 250), 5))
    one = ctl.labelmap.labels.copy()
    ctl.active_label = 2
    drag(ax.viewport(), line(viewport_pos(ax, 100, 200), viewport_pos(ax, 200, 200), 5))
    two = ctl.labelmap.labels.copy()
    assert (two == 2).any() and not np.array_equal(one, two)
    ax.setFocus()

    def shown():
        return ax.overlay_item.image

    qtbot.keyClick(ax, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(ctl.labelmap.labels, one)
    np.testing.assert_array_equal(shown(), one[50])
    qtbot.keyClick(ax, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not ctl.labelmap.labels.any() and not shown().any()
    qtbot.keyClick(ax, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(ctl.labelmap.labels, one)
    qtbot.keyClick(ax, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(ctl.labelmap.labels, two)
    np.testing.assert_array_equal(shown(), two[50])
    assert not annot.actions_by_name["redo"].isEnabled()


def test_flood_fill_click_2d_and_3d_within_the_range(qtbot, annot, chest_volume):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    panel = annot.annotation.paint_panel
    panel.lo.setValue(-1000)
    panel.hi.setValue(-400)
    annot.set_tool("flood")
    pos = viewport_pos(ax, 256, 150)  # the right lung
    seed = tuple(np.round(index_at(ax, pos)).astype(int))
    click(ax.viewport(), pos)
    img = chest_volume.array
    comp, _ = ndimage.label((img[50] >= -1000) & (img[50] <= -400))
    expected = comp == comp[seed[1], seed[2]]
    assert expected.sum() > 5000
    np.testing.assert_array_equal(ctl.labelmap.labels[50] == 1, expected)
    assert not ctl.labelmap.labels[49].any()
    ctl.undo()
    panel.sphere.setChecked(True)  # 3D: runs on the job bridge
    click(ax.viewport(), pos)
    qtbot.waitUntil(lambda: ctl.labelmap.labels[20].any(), timeout=30000)
    comp3, _ = ndimage.label((img >= -1000) & (img <= -400))
    np.testing.assert_array_equal(ctl.labelmap.labels == 1, comp3 == comp3[seed])


def test_polygon_clicks_with_double_click_and_lasso_drag(qtbot, annot):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    annot.set_tool("polygon")
    corners = [(200, 200), (200, 260), (240, 260), (240, 200)]
    for rc in corners[:-1]:
        click(ax.viewport(), viewport_pos(ax, *rc))
    assert ctl.labelmap is None or not ctl.labelmap.labels.any()  # nothing until closed
    click(ax.viewport(), viewport_pos(ax, *corners[-1]), double=True)
    lab = ctl.labelmap.labels[50] == 1
    assert lab[201:240, 201:260].all()
    outside = lab.copy()
    outside[199:242, 199:262] = False
    assert not outside.any()
    # a lasso: drag around a region and let go
    ctl.active_label = 2
    loop = [viewport_pos(ax, 320, 320), viewport_pos(ax, 320, 380), viewport_pos(ax, 380, 380),
            viewport_pos(ax, 380, 320), viewport_pos(ax, 322, 320)]
    drag(ax.viewport(), loop)
    lab2 = ctl.labelmap.labels[50] == 2
    assert lab2[322:379, 322:379].all()
    outside = lab2.copy()
    outside[318:383, 318:383] = False
    assert not outside.any()
    # Enter closes a clicked polygon too
    ctl.active_label = 3
    for rc in [(100, 100), (100, 140), (130, 120)]:
        click(ax.viewport(), viewport_pos(ax, *rc))
    ax.setFocus()
    qtbot.keyClick(ax, Qt.Key.Key_Return)
    assert (ctl.labelmap.labels[50] == 3).sum() > 400


def test_fill_between_slices_button(qtbot, annot):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    ses = annot.session
    annot.set_tool("brush")
    annot.annotation.options.set(radius_mm=10.0)
    for z, (r, c) in ((44, (250, 200)), (54, (250, 210))):  # overlapping discs
        ses.set_cursor_index((z, 256, 256))
        click(ax.viewport(), viewport_pos(ax, r, c))
    area = (ctl.labelmap.labels[44] == 1).sum()
    assert all(not ctl.labelmap.labels[z].any() for z in range(45, 54))
    qtbot.mouseClick(annot.annotation.paint_panel.interpolate, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ctl.labelmap.labels[49].any(), timeout=30000)
    for z in range(45, 54):
        sl = ctl.labelmap.labels[z] == 1
        assert sl.sum() == pytest.approx(area, rel=0.15), z
        cy, cx = ndimage.center_of_mass(sl)
        assert cy == pytest.approx(250, abs=1.5)
        assert cx == pytest.approx(200 + 10 * (z - 44) / 10, abs=1.5)  # moves with the discs
    assert ctl.undo_stack.peek_undo().tool == "interpolate"
    ctl.undo()
    assert not ctl.labelmap.labels[49].any()


def test_threshold_paint_changes_only_voxels_in_the_range(qtbot, annot, chest_volume):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    panel = annot.annotation.paint_panel
    annot.set_tool("brush")
    annot.annotation.options.set(radius_mm=25.0)
    panel.lo.setValue(-1000)
    panel.hi.setValue(-500)
    qtbot.mouseClick(panel.use_range, Qt.MouseButton.LeftButton,
                     pos=QPoint(8, panel.use_range.height() // 2))  # on the box itself
    assert annot.annotation.options.use_range
    pos = viewport_pos(ax, 256, 130)  # the edge of the right lung: air and tissue under the brush
    click(ax.viewport(), pos)
    _, cy, cx = np.round(index_at(ax, pos)).astype(int)
    img = chest_volume.array[50]
    inside = _disc(cy, cx, 25.0) & (img >= -1000) & (img <= -500)
    np.testing.assert_array_equal(ctl.labelmap.labels[50] == 1, inside)
    assert 0 < inside.sum() < _disc(cy, cx, 25.0).sum() * 0.95  # the range really cut it
