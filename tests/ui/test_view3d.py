"""The 3D view on TotalSegmentator's example CT with its 41 labels: an offscreen render
against a golden picture, a brush stroke through the real controller re-meshing the surface
where it was painted, a click on a surface moving the crosshair, the presets, the View menu
switch, and the pane saying why when VTK cannot run.

Golden picture: tests/ui/golden/view3d_totalseg.png (256 x 256), rendered offscreen (EGL or
OSMesa when there is no display; llvmpipe here). Tolerance: mean absolute difference
<= 3 grey levels per channel and <= 2 % of the pixels differing by more than 40 in any channel
(another Mesa or a GPU rasterises edges a little differently). After a deliberate change of
the scene, write a new one with ``MEDVIEWER_REGEN_GOLDEN=1 pytest tests/ui/test_view3d.py -k
golden`` and look at it before committing it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QImage

from annot_helpers import click, drag, line, viewport_pos

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "view3d_totalseg.png"
MEAN_TOL, PIXEL_TOL, SHARE_TOL = 3.0, 40, 0.02


@pytest.fixture(scope="module")
def gl():
    """Skip (with the reason) where no OpenGL context can be made."""
    from medviewer.ui.view3d import probe

    problem = probe.ask()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def ts(shared_data):
    from medviewer.io.volume_files import read_volume_file

    folder = shared_data / "totalseg" / "tests" / "reference_files"
    return read_volume_file(folder / "example_ct_sm.nii.gz"), folder / "example_seg.nii.gz"


def _scene_picture(ts) -> np.ndarray:
    from medviewer.core.overlay import label_lut
    from medviewer.services.annotations import read_label_file
    from medviewer.services.surfaces import mesh_labels
    from medviewer.ui.view3d.scene import Scene3D

    vol, seg = ts
    labels, _t, _w = read_label_file(seg, vol.geometry)
    surfaces = mesh_labels(labels, vol.geometry)
    lut = label_lut(int(labels.max()), 1.0)
    scene = Scene3D(256, 256)
    scene.set_volume(vol)
    scene.set_surfaces(surfaces)
    scene.set_colours({v: tuple(int(c) for c in lut[v, :3]) for v in surfaces})
    scene.set_cursor((15, 50, 61))
    scene.reset_camera()
    return scene.render()


def _read_png(path: Path) -> np.ndarray:
    img = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, :3 * img.width()].reshape(img.height(), img.width(), 3).copy()


def _write_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    img = QImage(arr.data, arr.shape[1], arr.shape[0], 3 * arr.shape[1], QImage.Format.Format_RGB888)
    assert img.save(str(tmp))
    os.replace(tmp, path)


def test_offscreen_render_matches_the_golden_picture(gl, ts):
    rgb = _scene_picture(ts)
    assert rgb.shape == (256, 256, 3)
    if os.environ.get("MEDVIEWER_REGEN_GOLDEN") == "1":
        _write_png(rgb, GOLDEN)
    golden = _read_png(GOLDEN)
    diff = np.abs(rgb.astype(int) - golden.astype(int))
    mean, share = float(diff.mean()), float((diff.max(axis=2) > PIXEL_TOL).mean())
    assert mean <= MEAN_TOL and share <= SHARE_TOL, f"mean {mean:.2f}, share {share:.4f}"
    # the picture is the organs, not an empty frame: many colours, most of it background
    assert len(np.unique(rgb.reshape(-1, 3) // 32, axis=0)) > 20


def _open_ts(qtbot, window, ts):
    vol, seg = ts
    window.session.add_volume(vol)
    ctl = window.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    window.annotation.io.import_labelmap(seg)
    qtbot.waitUntil(lambda: ctl.labelmap is not None and ctl.labelmap.labels.any(), timeout=30000)
    feature = window.features["view3d"]
    with qtbot.waitSignal(feature.mesher.sig_remeshed, timeout=60000):
        window.actions_by_name["view3d_toggle"].trigger()
        assert window.tri.fourth_name == "3d"
    qtbot.waitUntil(lambda: feature.pane.picture() is not None and len(feature.pane.scene.actors) == 41,
                    timeout=30000)
    return feature.pane, ctl


def _display_xy(scene, lps):
    r = scene.renderer
    r.SetWorldPoint(*lps, 1.0)
    r.WorldToDisplay()
    x, y, _ = r.GetDisplayPoint()
    return x, scene.size[1] - 1 - y


def test_a_label_edit_updates_the_3d_surface(qtbot, window, ts, gl):
    pane, ctl = _open_ts(qtbot, window, ts)
    assert pane.status.text().startswith("41 labels")
    ax = window.tri.views["axial"]
    lm = ctl.labelmap
    new_value = lm.table.add("Stroke", (255, 255, 0)).value
    ctl.active_label = new_value
    window.set_tool("brush")
    window.annotation.options.set(radius_mm=9.0)
    before = pane.picture()
    rows = (20, 20)
    a, b = viewport_pos(ax, rows[0], 30), viewport_pos(ax, rows[1], 90)
    with qtbot.waitSignal(pane.mesher.sig_remeshed, timeout=30000,
                          check_params_cb=lambda values: new_value in values):
        drag(ax.viewport(), line(a, b, 8))
    painted = np.argwhere(lm.labels == new_value)
    assert len(painted) > 50
    # the new label's surface wraps the painted voxels, in world mm
    actor = pane.scene.actors[new_value]
    lps = window.session.active.geometry.index_zyx_to_lps(painted.astype(float))
    lo, hi = np.array(actor.GetBounds()[0::2]), np.array(actor.GetBounds()[1::2])
    # surface-nets vertices stay in their cell: within one voxel (3 mm) of the painted voxels
    assert np.all(lo >= lps.min(axis=0) - 3.001) and np.all(hi <= lps.max(axis=0) + 3.001)
    np.testing.assert_allclose((lo + hi) / 2, (lps.min(axis=0) + lps.max(axis=0)) / 2, atol=3.0)
    span = lps.max(axis=0) - lps.min(axis=0)
    assert (hi - lo)[0] >= 0.9 * span[0] and (hi - lo)[1] >= 0.8 * span[1]  # the whole stroke
    # only the stroke's labels were meshed again (in a box), and the picture changed there
    assert "re-meshed" in pane.status.text()
    qtbot.waitUntil(lambda: not np.array_equal(pane.picture(), before), timeout=10000)
    after = pane.picture()
    x, y = _display_xy(pane.scene, lps.mean(axis=0))
    h, w = after.shape[:2]
    sx, sy = w / pane.scene.size[0], h / pane.scene.size[1]
    x0, y0 = int(x * sx), int(y * sy)
    win_after = after[max(y0 - 8, 0):y0 + 8, max(x0 - 8, 0):x0 + 8].astype(int)
    win_before = before[max(y0 - 8, 0):y0 + 8, max(x0 - 8, 0):x0 + 8].astype(int)
    assert np.abs(win_after - win_before).max(axis=2).mean() > 20
    # yellow (the stroke's colour) where it was painted
    r_, g_, b_ = win_after.reshape(-1, 3).mean(axis=0)
    assert r_ > b_ + 40 and g_ > b_ + 40
    # undo takes the surface away again
    with qtbot.waitSignal(pane.mesher.sig_remeshed, timeout=30000):
        ctl.undo()
    assert new_value not in pane.scene.actors


def test_a_click_on_a_surface_moves_the_crosshair(qtbot, window, ts, gl):
    pane, ctl = _open_ts(qtbot, window, ts)
    session, labels = window.session, ctl.labelmap.labels
    scene = pane.scene
    target = np.argwhere(labels == 5).mean(axis=0)  # the liver's centre, seen from the front
    x, y = _display_xy(scene, session.active.geometry.index_zyx_to_lps(target))
    sw, sh = scene.size
    cx, cy = x * pane.canvas.width() / sw, y * pane.canvas.height() / sh
    start = session.cursor_zyx
    click(pane.canvas, QPoint(int(round(cx)), int(round(cy))))
    assert session.cursor_zyx != start
    z, y_, x_ = session.cursor_zyx
    near = labels[max(z - 1, 0):z + 2, max(y_ - 1, 0):y_ + 2, max(x_ - 1, 0):x_ + 2]
    assert (near == 5).any()  # on the liver's surface
    # the planes follow the cursor: the axial plane's outline is at the cursor's height
    qtbot.waitUntil(lambda: abs(scene.plane_actors["axial"].GetBounds()[4]
                                - session.cursor_lps[2]) < 1e-3, timeout=5000)


def test_label_colours_and_visibility_follow_the_table(qtbot, window, ts, gl):
    pane, ctl = _open_ts(qtbot, window, ts)
    table, actors = ctl.labelmap.table, pane.scene.actors
    table.set_color(5, (0, 0, 255))
    assert actors[5].GetProperty().GetColor() == pytest.approx((0.0, 0.0, 1.0))
    table.set_visible(5, False)
    assert not actors[5].GetVisibility() and actors[20].GetVisibility()
    assert pane.mesher.last_remesh_s is None  # colours and visibility need no new mesh
    table.set_visible(5, True)
    assert actors[5].GetVisibility()
    # a new, empty label map: no surfaces
    with qtbot.waitSignal(pane.mesher.sig_surfaces, timeout=30000):
        ctl.new_labelmap()
    qtbot.waitUntil(lambda: not pane.scene.actors, timeout=30000)


def test_presets_planes_and_camera(qtbot, window, ts, gl):
    pane, _ctl = _open_ts(qtbot, window, ts)
    pane.surfaces_box.setChecked(False)
    pane.planes_box.setChecked(False)
    qtbot.waitUntil(lambda: pane.picture() is not None and pane.picture().max() < 40, timeout=5000)
    pictures = {}
    for key in ("soft_tissue", "bone", "lung"):
        pane.preset_box.setCurrentIndex(pane.preset_box.findData(key))
        n = pane.renders
        qtbot.waitUntil(lambda: pane.renders > n, timeout=10000)
        pictures[key] = pane.picture().astype(int)
        assert (pictures[key].max(axis=2) > 60).mean() > 0.005, key  # the volume shows
    # with volume rendering a change shows a half-resolution preview first, then the full
    # picture once nothing changed for a while
    full = pane._pixel_size()
    qtbot.waitUntil(lambda: pane.scene.size == full, timeout=10000)
    window.session.set_cursor_index((10, 40, 40))
    qtbot.waitUntil(lambda: pane.scene.size == (full[0] // 2, full[1] // 2), timeout=5000)
    qtbot.waitUntil(lambda: pane.scene.size == full, timeout=10000)
    assert np.abs(pictures["bone"] - pictures["soft_tissue"]).mean() > 2
    assert np.abs(pictures["lung"] - pictures["bone"]).mean() > 2
    cam = pane.scene.renderer.GetActiveCamera()
    centre = pane.canvas.rect().center()
    n = pane.renders
    drag(pane.canvas, line(centre, centre + QPoint(60, 20), 6))  # left drag turns the view
    assert pane.renders > n and not pane.interactive
    assert cam.GetDirectionOfProjection() != pytest.approx((0.0, 1.0, 0.0), abs=1e-3)
    moved = cam.GetPosition()
    window.actions_by_name["view3d_reset_camera"].trigger()
    assert cam.GetPosition() != moved
    assert cam.GetViewUp() == pytest.approx((0.0, 0.0, 1.0))
    assert cam.GetDirectionOfProjection() == pytest.approx((0.0, 1.0, 0.0))  # from the front


def test_view_menu_switches_the_fourth_pane_and_remembers_it(qtbot, window):
    act = window.actions_by_name["view3d_toggle"]
    assert window.tri.fourth_name == "info" and not act.isChecked()
    act.trigger()
    assert window.tri.fourth_name == "3d" and act.isChecked()
    assert window.tri.fourth.currentWidget().objectName() == "view3dPane"
    assert window.settings.value("view/fourth_pane") == "3d"
    act.trigger()
    assert window.tri.fourth_name == "info" and window.tri.info.isVisible()


CHILD = r"""
import json, sys
from PySide6.QtWidgets import QApplication
import pyqtgraph as pg
pg.setConfigOptions(imageAxisOrder="row-major")
from medviewer.ui.main_window import MainWindow
app = QApplication([])
win = MainWindow(); win.show()
pane = win.features["view3d"].pane
said = []
pane.sig_ready.connect(said.append)
win.features["view3d"].show_3d(True)
import time
end = time.time() + 60
while not said and time.time() < end:
    app.processEvents(); time.sleep(0.01)
print(json.dumps({"said": said, "message": pane.message.text(),
                  "shown": pane.stack.currentWidget() is pane.message,
                  "vtk": "vtkmodules.vtkRenderingCore" in sys.modules}))
win.close()
"""


def test_without_vtk_the_pane_says_why_and_the_app_works(tmp_path):
    """A Python where ``import vtkmodules`` fails (as without the package)."""
    fake = tmp_path / "novtk" / "vtkmodules"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named vtkmodules')\n")
    env = dict(os.environ, PYTHONPATH=f"{fake.parent}:{REPO}", QT_QPA_PLATFORM="offscreen",
               MEDVIEWER_SETTINGS_DIR=str(tmp_path / "s"), MEDVIEWER_WORKSPACE=str(tmp_path / "w"))
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env,
                         timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["shown"] and not out["vtk"]
    assert out["said"] == [out["message"]]
    assert out["message"].startswith("VTK is not available") and "pip install vtk" in out["message"]


def test_a_single_slice_or_colour_image_has_no_volume_rendering(gl, mono1_volume):
    from medviewer.ui.view3d.scene import Scene3D

    scene = Scene3D(64, 64)
    scene.set_volume(mono1_volume)  # a radiograph: one slice
    scene.set_preset("bone")
    scene.set_cursor((0, 10, 10))
    rgb = scene.render()
    assert scene.volume_actor is None and rgb.shape == (64, 64, 3)
    assert (rgb.max(axis=2) > 100).any()  # the crosshair planes' outlines are drawn
