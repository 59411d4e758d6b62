"""The enhancement dialog end to end on the shared chest CT: Tools > Enhance image… lists the
filters (the learned denoiser disabled with its reason when no trained model is installed),
builds each filter's settings form, previews the current slice on the job bridge (the after
image is services.enhance.preview of that slice), toggles before/after and swipes, applies a
filter to the whole series as a new derived series (original untouched), cancels an apply
without adding anything, and refuses an out-of-range setting or a colour image in one
sentence."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.core.windowing import window_to_levels
from medviewer.services import enhance as E


def _open(chest_window):
    win = chest_window
    win.actions_by_name["enhance_image"].trigger()
    dlg = win.enhance.dialog
    assert dlg is not None and dlg.isVisible()
    return dlg


def test_menu_filters_and_settings_form(chest_window):
    win = chest_window
    act = win.actions_by_name["enhance_image"]
    assert act in win.tools_menu.actions() and act.shortcut().toString() == "Ctrl+Alt+E"
    dlg = _open(win)
    items = {dlg.filters.item(i).data(Qt.ItemDataRole.UserRole): dlg.filters.item(i)
             for i in range(dlg.filters.count())}
    assert list(items) == list(E.FILTERS)
    for name, item in items.items():
        why = E.unavailable(name)
        assert bool(item.flags() & Qt.ItemFlag.ItemIsEnabled) == (not why)
        assert item.toolTip() == (why or E.FILTERS[name].help)
    assert dlg.select("bilateral")
    assert set(dlg.spins) == {"sigma_mm", "range"}
    spin = dlg.spins["sigma_mm"]
    assert spin.value() == 1.5 and spin.suffix() == " mm"
    assert "spatial Gaussian" in spin.toolTip() and "0.3 to 10 mm" in spin.toolTip()
    assert dlg.about.text() == E.FILTERS["bilateral"].help
    assert dlg.select("diffusion") and dlg.spins["iterations"].decimals() == 0


def test_the_learned_entry_is_disabled_with_its_reason_when_no_model(chest_window):
    dlg = _open(chest_window)
    reason = E.unavailable("learned")
    if not reason:
        pytest.skip("a trained denoiser is installed: the learned entry is enabled")
    item = next(dlg.filters.item(i) for i in range(dlg.filters.count())
                if dlg.filters.item(i).data(Qt.ItemDataRole.UserRole) == "learned")
    assert not item.flags() & Qt.ItemFlag.ItemIsEnabled
    assert item.toolTip() == reason and "not available" in item.text()
    before = dlg.filter_name
    assert not dlg.select("learned")
    assert dlg.filter_name == before and dlg.status.property("error") == reason


def test_preview_nlm_is_the_service_preview_and_before_after_toggle(qtbot, chest_window):
    win = chest_window
    vol = win.session.active
    z = int(vol.shape[0]) // 2
    win.session.set_cursor_index((z, 256, 256))
    win.session.set_window(-600, 1500)  # lung window: the dialog draws at the views' levels
    dlg = _open(win)
    assert dlg.z == z
    assert dlg.select("nlm")
    dlg.preview_button.click()
    qtbot.waitUntil(lambda: dlg.preview_key is not None, timeout=60000)
    original = np.asarray(vol.array[z])
    expected = E.preview(vol, z, "nlm", dlg.params)
    view = dlg.view
    assert view.mode == "side"
    (t0, before), (t1, after) = view.shown()
    assert (t0, t1) == ("Before", "After")
    np.testing.assert_array_equal(before, original)
    np.testing.assert_array_equal(after, expected)
    assert after.dtype == original.dtype
    assert np.abs(after.astype(float) - original).mean() > 1.0  # it did denoise
    assert tuple(view.items[0].levels) == pytest.approx(window_to_levels(-600, 1500))
    dlg.toggle_button.click()
    assert [t for t, _ in view.shown()] == ["After"]
    np.testing.assert_array_equal(view.shown()[0][1], expected)
    dlg.toggle_button.click()
    assert [t for t, _ in view.shown()] == ["Before"]
    np.testing.assert_array_equal(view.shown()[0][1], original)
    view.set_mode("swipe")
    view.set_split(0.25)
    (_, img), = view.shown()
    np.testing.assert_array_equal(img[:, :128], original[:, :128])
    np.testing.assert_array_equal(img[:, 128:], expected[:, 128:])
    sx, sy = vol.geometry.spacing[:2]
    assert view.handle.isVisible() and view.handle.value() == pytest.approx(0.25 * 512 * sx)
    view.handle.setValue(0.75 * 512 * sx)  # dragging the split line in the image
    assert view.split == pytest.approx(0.75) and dlg.view.slider.value() == 75
    (_, img), = view.shown()
    np.testing.assert_array_equal(img[:, :384], original[:, :384])
    np.testing.assert_array_equal(img[:, 384:], expected[:, 384:])
    rect = view.items[0].boundingRect()  # drawn in mm: the slice's true aspect
    assert view.items[0].mapRectToParent(rect).width() == pytest.approx(512 * sx)
    win.session.set_window(40, 400)  # the view's window/level follows the slice views'
    assert tuple(view.items[0].levels) == pytest.approx(window_to_levels(40, 400))
    pixels = original.copy()
    win.session.set_cursor_index((z + 1, 256, 256))  # another slice: its own preview
    assert dlg.z == z + 1 and dlg.preview_key is None
    np.testing.assert_array_equal(vol.array[z], pixels)


@pytest.mark.slow
def test_apply_adds_a_derived_series_and_keeps_the_original(qtbot, chest_window):
    win = chest_window
    vol = win.session.active
    pixels = np.array(vol.array)
    n = len(win.session.volumes)
    dlg = _open(win)
    assert dlg.select("unsharp")
    dlg.set_param("amount", 1.2)
    dlg.apply_button.click()
    assert dlg.close_button.text() == "Cancel" and not dlg.apply_button.isEnabled()
    qtbot.waitUntil(lambda: len(win.session.volumes) == n + 1, timeout=120000)
    out = win.session.volumes[-1]
    assert out is win.enhance.added[-1] and out is not vol
    assert "[Unsharp mask (sigma 1 mm, amount 1.2)]" in out.description
    assert out.meta["enhancement"]["filter"] == "unsharp"
    assert out.shape == vol.shape and out.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(out.array[40], E.preview(vol, 40, "unsharp", {"amount": 1.2}))
    np.testing.assert_array_equal(vol.array, pixels)
    assert win.session.active is vol  # the derived series is listed, not shown over the original
    entry = next(e for k, e in win.loader.entries.items() if win.loader.volumes[k] is out)
    assert entry.kind == "derived" and entry.description == out.description
    assert dlg.bar.value() == dlg.bar.maximum() and dlg.close_button.text() == "Close"


@pytest.mark.slow
def test_cancel_mid_apply_adds_nothing(qtbot, chest_window):
    win = chest_window
    n = len(win.session.volumes)
    dlg = _open(win)
    assert dlg.select("nlm")
    dlg.apply_button.click()
    qtbot.waitUntil(lambda: dlg.bar.value() >= 1, timeout=60000)
    dlg.close_button.click()  # reads Cancel while it runs
    qtbot.waitUntil(lambda: not dlg.running, timeout=60000)
    assert dlg.status.text() == "Cancelled: nothing was added."
    assert len(win.session.volumes) == n and win.enhance.added == []
    assert dlg.bar.value() == 0 and dlg.apply_button.isEnabled()


def test_an_out_of_range_setting_is_refused_in_one_sentence(chest_window):
    win = chest_window
    n = len(win.session.volumes)
    dlg = _open(win)
    assert dlg.select("nlm")
    dlg.set_param("strength", 5.0)
    err = dlg.status.property("error")
    assert err == "Non-local means: strength must be between 0.1 and 3 x noise, got 5."
    assert not dlg.preview_button.isEnabled() and not dlg.apply_button.isEnabled()
    assert dlg.apply() is None and dlg.preview() is None
    assert len(win.session.volumes) == n
    dlg.set_param("strength", 1.0)
    assert dlg.status.property("error") is None and dlg.apply_button.isEnabled()


def test_a_colour_series_is_refused_in_one_sentence(window):
    rgb = Volume(np.zeros((2, 16, 16, 3), np.uint8), Geometry(shape=(2, 16, 16)),
                 modality="XC", description="photo")
    window.session.add_volume(rgb)
    window.actions_by_name["enhance_image"].trigger()
    dlg = window.enhance.dialog
    assert dlg.status.property("error") == ("Colour images are not enhanced; choose a "
                                             "greyscale series.")
    assert not dlg.preview_button.isEnabled() and dlg.apply() is None


def test_closing_while_previewing_drops_the_preview_and_reopening_works(qtbot, chest_window):
    win = chest_window
    dlg = _open(win)
    assert win.enhance.open_dialog() is dlg  # one dialog at a time
    assert dlg.select("nlm")
    assert dlg.preview() is not None
    dlg.close_button.click()  # Close (nothing is being applied)
    assert win.enhance.dialog is None
    qtbot.waitUntil(lambda: not win.bridge.busy, timeout=60000)  # the preview ended, unused
    qtbot.wait(50)
    win.session.set_window(40, 400)  # the closed dialog no longer listens to the session
    win.session.set_cursor_index((10, 100, 100))
    again = _open(win)
    assert again is not dlg and again.z == 10 and again.preview_key is None


def test_a_job_error_reads_as_one_sentence():
    from medviewer.ui.enhance.dialog import sentence

    assert sentence("EnhanceError: slice 999 is outside the series (0..99)") == \
        "Slice 999 is outside the series (0..99)."
    assert sentence("ModelError: the weights do not match their card\nTraceback") == \
        "The weights do not match their card."
    assert sentence("") == "The filter failed."
