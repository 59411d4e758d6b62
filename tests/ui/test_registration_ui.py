"""The registration UI end to end on real data: the TotalSegmentator MR and a copy of it moved
by a known rigid transform (written to a temporary NIfTI), opened in the app; the dialog run
through its buttons; the registered series added on the fixed grid and aligned; the fused
display (blend, checkerboard, swipe) in the three planes; labels carried over as a proposal;
the transform saved and the series exported; cancel; errors in one sentence."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from annot_helpers import drag, rendered_rgb, viewport_pos

from medviewer.core.geometry import Geometry
from medviewer.core.reformat import ortho_slab
from medviewer.core.volume import Volume
from medviewer.core.windowing import window_to_levels
from medviewer.services import registration as R
from medviewer.services.studies import load, scan


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    """(fixed MR, its label map, the MR moved by a known rigid transform, its labels moved
    alike) as files."""
    ref = shared_data / "totalseg" / "tests" / "reference_files"
    fixed_path, seg_path = ref / "example_mr_sm.nii.gz", ref / "example_seg_mr.nii.gz"
    fixed = load(scan([str(fixed_path)]).series[0])
    seg = load(scan([str(seg_path)]).series[0])
    img = R._image(fixed)
    centre = img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in img.GetSize()])
    known = sitk.Euler3DTransform(centre, math.radians(5), 0.0, math.radians(-8), (7.0, -5.0, 3.0))
    tmp = tmp_path_factory.mktemp("registration_ui")
    moved = R.resample_volume(fixed, fixed.geometry, known, description="MR moved")
    moving_path = R.write_series(moved, tmp / "mr_moved.nii.gz")
    moved_seg = R.resample_labels(np.asarray(seg.array).astype(np.uint8), seg.geometry,
                                  fixed.geometry, known)
    moving_seg_path = R.write_labels(moved_seg, fixed.geometry, tmp / "mr_moved_seg.nii.gz")
    return fixed_path, np.asarray(seg.array), moving_path, moving_seg_path, known


def _open(qtbot, win, path) -> Volume:
    n = len(win.session.volumes)
    win.open_paths([str(path)])
    qtbot.waitUntil(lambda: len(win.session.volumes) == n + 1, timeout=30000)
    return win.session.volumes[-1]


def _corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float).ravel(), np.asarray(b, float).ravel())[0, 1])


def _dialog(win, fixed, moving, kind):
    dlg = win.registration.open_dialog()
    vols = dlg.volumes
    dlg.fixed_box.setCurrentIndex(next(i for i, v in enumerate(vols) if v is fixed))
    dlg.moving_box.setCurrentIndex(next(i for i, v in enumerate(vols) if v is moving))
    dlg.kind_box.setCurrentIndex(dlg.kind_box.findData(kind))
    return dlg


def _opened_pair(qtbot, window, files):
    fixed_path, _seg, moving_path, _mseg, _known = files
    fixed = _open(qtbot, window, fixed_path)
    moving = _open(qtbot, window, moving_path)
    return fixed, moving


@pytest.mark.slow
def test_register_fuse_carry_labels_save_and_export(qtbot, window, files, tmp_path):
    fixed_path, seg, moving_path, moving_seg_path, known = files
    fixed, moving = _opened_pair(qtbot, window, files)
    moving_pixels = np.array(moving.array)
    ctl = window.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    window.annotation.io.import_labelmap(moving_seg_path)  # on the moving series (active)
    qtbot.waitUntil(lambda: ctl.labelmap_of(moving) is not None
                    and ctl.labelmap_of(moving).labels.any(), timeout=30000)
    before = _corr(fixed.array, moving.array)

    dlg = _dialog(window, fixed, moving, "rigid")
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    assert dlg.running and dlg.cancel_button.text() == "Cancel"
    feature = window.registration
    qtbot.waitUntil(lambda: len(feature.pairs) == 1, timeout=120000)

    # the derived series: in the session, on the fixed grid, aligned; the original untouched
    reg = feature.current.volume
    assert any(v is reg for v in window.session.volumes) and reg is not moving
    assert reg.geometry == fixed.geometry and reg.shape == fixed.shape
    assert "\u2192" in reg.description and "(rigid)" in reg.description
    np.testing.assert_array_equal(moving.array, moving_pixels)
    # as well aligned as the known transform's inverse does it (voxels that left the 20-slice
    # field of view are lost either way), and inside the field of view almost identical
    ideal = _corr(fixed.array, R.resample_volume(moving, fixed.geometry, known.GetInverse()).array)
    after = _corr(fixed.array, reg.array)
    ones = Volume(np.ones(moving.shape, np.float32), moving.geometry)
    inside = R.resample_volume(ones, fixed.geometry, feature.current.result.transform,
                               fill=0).array > 0.99
    assert before < 0.5 and after > ideal - 0.01 and after > before + 0.3, (before, after, ideal)
    assert _corr(fixed.array[inside], reg.array[inside]) > 0.95
    # the imported labels are unsaved: showing the fixed series asks first (answer: Save)
    unsaved = window.annotation.unsaved
    qtbot.waitUntil(lambda: unsaved.question is not None, timeout=5000)
    unsaved.question.button(QMessageBox.StandardButton.Save).click()
    qtbot.waitUntil(lambda: window.session.active is fixed, timeout=30000)
    text = feature.panel.provenance.text()
    assert "Mattes MI" in text and "iterations" in text and text == dlg.status.text()
    assert window.session.active is fixed and feature.fusion.enabled
    assert window.docks["registrationDock"].isVisible()
    assert dlg.cancel_button.text() == "Close"
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    assert not dlg.isVisible() and len(feature.pairs) == 1
    window.activateWindow()

    # the crosshair is one physical point in both series, and stays so when switching
    window.session.set_cursor_index((12, 40, 70))
    lps = window.session.cursor_lps
    feature.show_series("registered")
    assert window.session.active is reg
    np.testing.assert_allclose(window.session.cursor_lps, lps, atol=1e-6)
    assert window.session.cursor_zyx == (12, 40, 70)
    feature.show_series("fixed")
    assert window.session.active is fixed and window.session.cursor_zyx == (12, 40, 70)

    # fusion in the three planes
    fusion, panel, layers = feature.fusion, feature.panel, feature.overlays.layers
    view = window.tri.views["axial"]
    fusion.set_enabled(False)
    qtbot.wait(50)
    alone = rendered_rgb(view)
    fusion.set_enabled(True)
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("blend"))
    panel.blend.setValue(0)
    assert all(layer.shown_image() is None for layer in layers.values())
    qtbot.wait(50)
    assert np.array_equal(rendered_rgb(view), alone)  # 0 %: the fixed series only
    panel.blend.setValue(100)
    hint = reg.default_window()
    lo, hi = window_to_levels(hint.center, hint.width)
    for plane, layer in layers.items():
        shown = layer.shown_image()
        assert shown is not None and shown.shape[2] == 4 and (shown[..., 3] == 255).all(), plane
        sl = window.tri.views[plane].reslicer.extract(reg.array, plane,
                                                       window.tri.views[plane].current.index).image
        grey = np.clip((sl.astype(float) - lo) / (hi - lo) * 255, 0, 255)
        assert np.abs(shown[..., 0].astype(float) - grey).max() <= 1.0, plane
    qtbot.wait(50)
    full = rendered_rgb(view)
    assert np.abs(full - alone).mean() > 1.0  # the registered series is what is seen:
    feature.show_series("registered")  # as it looks shown alone (the middle of the view,
    still_on = fusion.enabled  # where no corner text is; fusion shows on the fixed only)
    assert all(layer.shown_image() is None for layer in layers.values())
    qtbot.wait(50)
    reg_alone = rendered_rgb(view)
    feature.show_series("fixed")
    h, w = full.shape[:2]
    mid = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    # (Qt maps rows and columns of the translucent layer at a non-integer zoom to screen
    # pixels one off from the image's own: each pixel is compared with its 3x3 neighbours)
    diff = np.min([np.abs(full[mid] - np.roll(reg_alone, (dy, dx), (0, 1))[mid]).max(axis=2)
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    assert still_on and (diff > 2).mean() < 0.02
    assert np.abs(full[mid] - alone[mid]).mean() > 2.0
    panel.blend.setValue(50)
    assert (layers["axial"].shown_image()[..., 3] == 128).all()
    window.tri.set_slab("mip", 15.0)  # a slab of the fixed series: the same of the registered
    sl = ortho_slab(view.reslicer, reg.array, "axial", view.current.index, 15.0, "mip").image
    grey = np.clip((sl.astype(float) - lo) / (hi - lo) * 255, 0, 255)
    assert np.abs(layers["axial"].shown_image()[..., 0].astype(float) - grey).max() <= 1.0
    window.tri.set_slab("mip", 0.0)

    panel.mode_box.setCurrentIndex(panel.mode_box.findData("checker"))
    panel.checker.setValue(15.0)  # 5 pixels of 3 mm
    a = layers["axial"].shown_image()[..., 3]
    assert (a[:5, :5] == 0).all() and (a[:5, 5:10] == 255).all() and (a[5:10, :5] == 255).all()
    assert (a[5:10, 5:10] == 0).all()
    qtbot.wait(50)
    checker = rendered_rgb(view)
    assert np.abs(checker - alone).mean() > 0.3 and np.abs(checker - full).mean() > 0.3

    panel.mode_box.setCurrentIndex(panel.mode_box.findData("swipe"))
    panel.swipe.setValue(50)
    cols = view.current.image.shape[1]
    a = layers["axial"].shown_image()[..., 3]
    half = int(round(0.5 * cols))
    assert (a[:, :half] == 0).all() and (a[:, half:] == 255).all()
    handle = layers["axial"].handle
    assert handle.isVisible() and abs(handle.value() - (half - 0.5) * view.current.col_spacing) < 1e-6
    row = view.current.image.shape[0] // 3
    drag(view.viewport(), [viewport_pos(view, row, half - 0.5), viewport_pos(view, row, half - 10),
                           viewport_pos(view, row, 20)])
    qtbot.waitUntil(lambda: abs(fusion.split * cols - 20) <= 1.5, timeout=5000)
    a = layers["axial"].shown_image()[..., 3]
    split = int(np.argmax(a[0] == 255))
    assert abs(split - 20) <= 2 and (a[:, :split] == 0).all() and (a[:, split:] == 255).all()
    assert abs(panel.swipe.value() - round(fusion.split * 100)) <= 1
    coronal = layers["coronal"].shown_image()[..., 3]  # the same split in the other planes
    assert (coronal[:, :int(round(fusion.split * coronal.shape[1]))] == 0).all()

    window.actions_by_name["fusion_toggle"].trigger()  # the shortcut's action
    assert not fusion.enabled and all(layer.shown_image() is None for layer in layers.values())
    window.actions_by_name["fusion_toggle"].trigger()
    assert fusion.enabled and layers["axial"].shown_image() is not None
    window.actions_by_name["fusion_mode"].trigger()  # swipe -> blend
    assert fusion.mode == "blend"
    view.setFocus()  # the keys themselves, wherever the focus is
    ctrl_alt = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
    qtbot.keyClick(view, Qt.Key.Key_F, ctrl_alt)
    assert not fusion.enabled
    qtbot.keyClick(view, Qt.Key.Key_F, ctrl_alt)
    qtbot.keyClick(view, Qt.Key.Key_M, ctrl_alt)
    assert fusion.enabled and fusion.mode == "checker"
    fusion.set_mode("blend")
    fusion.set_blend(0.5)
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert abs(fusion.blend - 0.6) < 1e-9 and panel.blend.value() == 60

    # the derived series is listed in the series browser, in the fixed series' study, and
    # shows like any other series from there
    browser, volumes = window.series_browser, window.loader.volumes
    reg_key = next(k for k, v in volumes.items() if v is reg)
    fixed_key = next(k for k, v in volumes.items() if v is fixed)
    item = browser.series_items[reg_key]
    assert item.parent() is browser.series_items[fixed_key].parent()
    assert "→" in item.text(0) and item.text(2) == str(fixed.shape[0])
    browser.setCurrentItem(item)
    qtbot.keyClick(browser, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.active is reg, timeout=5000)
    assert item.font(0).bold() and not fusion.shows_on(reg)
    feature.show_series("fixed")
    assert window.session.active is fixed and browser.series_items[fixed_key].font(0).bold()

    # labels follow: a proposal on the fixed series, its own labels unchanged
    assert ctl.labelmap_of(fixed) is None
    feature.carry_labels()
    qtbot.waitUntil(lambda: ctl.proposal is not None, timeout=30000)
    prop = ctl.proposal
    assert window.session.active is fixed and ctl.labelmap_of(fixed) is None
    assert set(np.unique(prop.labels)) <= set(np.unique(seg))
    for value in (v for v in np.unique(seg) if v and (seg == v).sum() > 2000):
        x, y = seg == value, prop.labels == value
        assert 2 * (x & y).sum() / (x.sum() + y.sum()) >= 0.85, value
    ctl.accept_proposal()
    assert ctl.labelmap_of(fixed) is not None and ctl.labelmap_of(fixed).labels.any()

    # the transform with its provenance, and the registered series as NIfTI
    job = feature.save_transform(tmp_path / "mr.tfm")
    qtbot.waitUntil(lambda: job not in feature.jobs, timeout=10000)
    again = R.load_transform(tmp_path / "mr.tfm")
    p = (10.0, -20.0, 30.0)
    np.testing.assert_allclose(again.TransformPoint(p),
                               feature.current.result.transform.TransformPoint(p), atol=1e-4)
    prov = json.loads((tmp_path / "mr.tfm.json").read_text())
    assert prov["kind"] == "rigid" and prov["iterations"] > 0
    job = feature.export(tmp_path / "registered.nii.gz")
    qtbot.waitUntil(lambda: job not in feature.jobs, timeout=10000)
    back = load(scan([str(tmp_path / "registered.nii.gz")]).series[0])
    assert back.shape == fixed.shape
    np.testing.assert_allclose(back.geometry.origin, fixed.geometry.origin, atol=1e-3)
    assert _corr(back.array, reg.array) > 0.999


@pytest.mark.slow
def test_cancel_stops_the_registration_and_adds_nothing(qtbot, window, files):
    fixed, moving = _opened_pair(qtbot, window, files)
    n = len(window.session.volumes)
    dlg = _dialog(window, fixed, moving, "deformable")
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "iteration" in dlg.status.text(), timeout=30000)
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.running, timeout=30000)
    assert dlg.status.text().startswith("Cancelled")
    assert dlg.run_button.isEnabled() and dlg.cancel_button.text() == "Close"
    assert len(window.session.volumes) == n and not window.registration.pairs


def test_bad_choices_are_refused_in_one_sentence(qtbot, window, files):
    feature = window.registration
    assert feature.open_dialog() is None
    assert window.errors and "Open two series first" in window.errors[-1]
    fixed = _open(qtbot, window, files[0])
    rgb = Volume(np.zeros((8, 32, 32, 3), np.uint8), Geometry(shape=(8, 32, 32)),
                 description="colour")
    thin = Volume(np.zeros((1, 64, 64), np.int16), Geometry(shape=(1, 64, 64)),
                  description="one slice")
    window.session.add_volume(rgb, activate=False)
    window.session.add_volume(thin, activate=False)
    for moving, words in ((fixed, "the same"), (rgb, "colour image"), (thin, "too thin")):
        dlg = _dialog(window, fixed, moving, "rigid")
        qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
        said = dlg.status.property("error")
        assert said and words in said and said.count(". ") == 0 and said.endswith("."), said
        assert not dlg.running and not feature.pairs
        dlg.reject()
    assert not window.actions_by_name["fusion_toggle"].isEnabled()  # nothing to fuse yet
    from medviewer.ui.registration.dialog import error_sentence

    assert error_sentence("RegistrationError: the affine stage failed") == "The affine stage failed."
    assert error_sentence("RuntimeError: Exception thrown in SimpleITK\nline 2") == \
        "Exception thrown in SimpleITK."
