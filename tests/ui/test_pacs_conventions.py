"""PACS conventions: slice numbers are InstanceNumbers, wheel order, corner overlays,
radiograph orientation letters (issue 14 §1). The chest CT is read by the app's own reader;
what the view shows is checked against the files read with pydicom."""
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from conftest import CHEST_CT


@pytest.fixture(scope="module")
def chest_files():
    """InstanceNumber -> (z of ImagePositionPatient, rescaled pixels), read with pydicom."""
    out = {}
    for p in sorted(Path(CHEST_CT).glob("*.dcm")):
        ds = pydicom.dcmread(p)
        pixels = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        out[int(ds.InstanceNumber)] = (float(ds.ImagePositionPatient[2]), pixels)
    return out


@pytest.fixture(scope="module")
def chest_read():
    from medviewer.io.load import open_first

    return open_first([str(CHEST_CT)])


@pytest.fixture
def read_window(window, chest_read):
    window.session.add_volume(chest_read)
    return window


def _shown_instance(view) -> int:
    m = re.match(r"Axial {2}Im (\d+)/100$", view.label("title").text())
    assert m, view.label("title").text()
    return int(m.group(1))


def _wheel(view, notches: int) -> None:
    """``notches`` > 0: the wheel turned towards the user (delta < 0)."""
    pos = QPointF(view.width() / 2, view.height() / 2)
    ev = QWheelEvent(pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0),
                     QPoint(0, -120 * notches), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), ev)


def test_slice_number_is_the_instance_number_of_the_file_shown(qtbot, read_window, chest_files):
    ax = read_window.tri.views["axial"]
    ses = read_window.session
    for z in (0, 37, 50, 99):
        ses.set_cursor_index((z, 256, 256))
        n = _shown_instance(ax)
        ipp_z, pixels = chest_files[n]
        np.testing.assert_array_equal(ax.current.image, pixels)  # the file with that number
        assert ses.cursor_lps[2] == pytest.approx(ipp_z, abs=1e-3)
    # wheel towards the user: the next image (InstanceNumber + 1), i.e. towards the feet
    ses.set_cursor_index((60, 256, 256))
    first = _shown_instance(ax)
    _wheel(ax, 3)
    assert _shown_instance(ax) == first + 3
    assert chest_files[first + 3][0] < chest_files[first][0]  # lower z = towards the feet
    ax.setFocus()
    qtbot.keyClick(ax, Qt.Key.Key_PageUp)
    assert _shown_instance(ax) == first + 2
    # the setting flips the wheel only, and is kept
    read_window.actions_by_name["reverse_wheel"].trigger()
    _wheel(ax, 1)
    assert _shown_instance(ax) == first + 1
    assert str(read_window.settings.value("view/reverse_wheel")).lower() == "true"
    read_window.actions_by_name["reverse_wheel"].trigger()
    _wheel(ax, 1)
    assert _shown_instance(ax) == first + 2


def test_reformatted_planes_say_their_order(qtbot, read_window):
    co, sa = read_window.tri.views["coronal"], read_window.tri.views["sagittal"]
    read_window.session.set_cursor_index((50, 10, 500))
    # coronal: front to back (y grows to P), sagittal: right to left (x grows to L)
    assert co.label("title").text() == "Coronal  Sl 11/512"
    assert sa.label("title").text() == "Sagittal  Sl 501/512"
