"""Heat maps read like an anchor: drawn on the body only, above a percentile the user picks;
uncertainty off until asked for; the AI panel forgets the last series' text."""
import numpy as np

from ai_helpers import models_isolated, seg_card, wait_until  # noqa: F401  (fixtures)


def _segment_slice(qtbot, win, card, z):
    ai = win.ai.ctl
    win.session.set_cursor_index((z, 256, 256))
    ai.select(card.ref)
    with qtbot.waitSignal(ai.sig_segmentation, timeout=120000):
        ai.run_slice()
    return ai.last_seg


def test_threshold_slider_and_series_change(qtbot, chest_window, seg_card, mono1_volume):
    win = chest_window
    ctl, panel = win.annotation.ctl, win.ai.panel
    wait_until(lambda: ctl.state is not None and ctl.state.ready, 30000)
    run = _segment_slice(qtbot, win, seg_card, 60)
    assert win.ai.heat.current() is None and not panel.uncertainty.isChecked()
    panel.uncertainty.setChecked(True)
    axial = win.tri.views["axial"]
    item = axial.heat.item

    def drawn() -> int:  # pixels above the lower level, i.e. not fully transparent
        lo, _hi = item.getLevels()
        return int(np.count_nonzero(item.image > lo))

    panel.threshold.setValue(0)
    drawn_all = drawn()
    panel.threshold.setValue(90)
    drawn_top = drawn()
    body = np.count_nonzero(run.entropy[60])
    assert 0 < drawn_top < 0.2 * drawn_all and drawn_all <= body
    assert "on the whole" in panel.seg_info.text() or "slice 61" in panel.seg_info.text()

    win.session.add_volume(mono1_volume)  # another series becomes active
    assert panel.seg_info.text() == "" and panel.status.text() == ""
    assert all(v.heat.shown_image() is None for v in win.tri.views.values())
