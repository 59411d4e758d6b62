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


def _corners(view) -> str:
    return "\n".join(view.label(k).text() for k in ("title", "info_tl", "info_tr", "info_br"))


def test_corner_overlays_show_the_study_and_hide_the_patient(qtbot, read_window, chest_files):
    ds = pydicom.dcmread(next(Path(CHEST_CT).glob("*.dcm")), stop_before_pixels=True)
    name = str(ds.PatientName).replace("^", " ").strip()
    d = str(ds.StudyDate)
    date = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    ax = read_window.tri.views["axial"]
    read_window.session.set_cursor_index((50, 256, 256))
    text = _corners(ax)
    assert name and name in text and str(ds.PatientID) in text
    assert f"Study {date}" in text and f"Se {ds.SeriesNumber} {ds.SeriesDescription}" in text
    inst = _shown_instance(ax)
    assert f"Pos z {chest_files[inst][0]:.1f} mm" in text  # the file's ImagePositionPatient z
    assert f"Thk {float(ds.SliceThickness):g} mm" in text
    c, w = read_window.session.window
    assert f"C {c:.0f} / W {w:.0f}" in text and "Zoom " in text
    zoom = float(re.search(r"Zoom ([\d.]+)×", text).group(1))
    a, b = (ax.mapFromScene(ax.vb.mapViewToScene(ax.display_to_view(0, c))) for c in (0, 400))
    assert zoom == pytest.approx((b.x() - a.x()) / 400, abs=0.01)  # screen pixels per image pixel
    # the "hide patient details" toggle takes the name, ID and date away, in every view
    read_window.actions_by_name["hide_patient"].trigger()
    for view in read_window.tri.views.values():
        hidden = _corners(view)
        assert name not in hidden and str(ds.PatientID) not in hidden and date not in hidden
        assert str(ds.SeriesDescription) in hidden
    read_window.actions_by_name["hide_patient"].trigger()
    assert name in _corners(ax)
    # configurable: the list in View > Corner overlays, kept in the settings
    read_window.actions_by_name["overlay_zoom"].trigger()
    read_window.actions_by_name["overlay_patient"].trigger()
    text = _corners(ax)
    assert "Zoom" not in text and name not in text and f"Study {date}" in text
    assert "zoom" not in str(read_window.settings.value("view/overlay_fields"))


def test_status_messages_stay_readable_and_dock_tabs_fit(qtbot, read_window):
    from PySide6.QtWidgets import QTabBar

    win = read_window
    win.resize(1600, 1000)
    qtbot.wait(50)
    bar = win.statusBar()
    msg = "Label map saved to the workspace as version 3 (final)"
    bar.showMessage(msg)
    long = "Cursor: voxel (x 511, y 511, z 99)   LPS (-229.1, -229.1, -236.5) mm   value -1024 HU"
    win.readout.setText(long * 3)
    qtbot.wait(50)
    assert bar.currentMessage() == msg
    # the readout keeps to the right half (elided, the full text in its tooltip)
    assert win.readout.width() <= bar.width() // 2 and win.readout.x() >= bar.width() // 2 - 40
    assert win.readout.x() > bar.fontMetrics().horizontalAdvance(msg) + 8
    assert win.readout.full_text() == long * 3 and win.readout.toolTip() == long * 3
    assert win.readout.text().endswith("…")
    # every visible dock tab shows its whole title; the full name is its tooltip
    tabs = [(b, i) for b in win.findChildren(QTabBar) if b.isVisible() for i in range(b.count())]
    assert len(tabs) >= 6
    for b, i in tabs:
        text = b.tabText(i)
        assert b.tabRect(i).width() >= b.fontMetrics().horizontalAdvance(text) + 12, text
    tips = {b.tabText(i): b.tabToolTip(i) for b, i in tabs}
    assert tips["Tags"] == "DICOM tags" and tips["Seg"] == "Segmentation"
    assert tips["Review"] == "Review queue"
    assert win.docks["tagDock"].toggleViewAction().text() == "DICOM tags"


DATA_STORE = Path(pydicom.__file__).resolve().parents[1] / "data_store" / "data"


def _open_file(qtbot, win, path):
    with qtbot.waitSignal(win.loader.sig_finished, timeout=60000):
        win.open_paths([str(path)])
    qtbot.waitUntil(lambda: win.session.active is not None, timeout=60000)
    return win.tri.views["axial"]


def _readout_at(view, row, col) -> str:
    return view.readout_at(view.display_to_view(row, col))


@pytest.mark.parametrize("name, letters", [("RG1_UNCI.dcm", ("H", "F", "R", "L")),
                                           ("RG3_J2KR.dcm", ("H", "F", "L", "R"))])
def test_radiograph_letters_from_patient_orientation_and_pixel_readout(qtbot, window, name,
                                                                       letters):
    path = DATA_STORE / name
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.Modality == "CR" and "ImageOrientationPatient" not in ds
    row_dir, col_dir = ds.PatientOrientation  # e.g. L\F: the right edge is the patient's left
    view = _open_file(qtbot, window, path)
    shown = tuple(view.label(k).text() for k in ("top", "bottom", "left", "right"))
    assert shown == letters and shown[3] == row_dir and shown[1] == col_dir
    # no pixel spacing in these files (0\0 or none): pixels only, no invented millimetres
    assert not any(float(v) > 0 for v in ds.get("PixelSpacing", []) or [])
    assert "ImagerPixelSpacing" not in ds
    text = _readout_at(view, 100, 200)
    assert text.startswith("pixel (x 200, y 100)") and "mm" not in text and "LPS" not in text
    # nor a patient position in the corners
    assert view.label("info_br").text() == ""


def test_projection_readout_gives_mm_when_the_spacing_is_known(qtbot, window):
    path = DATA_STORE / "JPEG-LL.dcm"  # NM whole-body image: PixelSpacing 2.26 mm, no IOP
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    sy, sx = (float(v) for v in ds.PixelSpacing)
    view = _open_file(qtbot, window, path)
    text = _readout_at(view, 100, 200)
    assert text.startswith(f"pixel (x 200, y 100)   ({200 * sx:.1f}, {100 * sy:.1f}) mm")
    assert all(view.label(k).text() == "" for k in ("top", "bottom", "left", "right"))


def test_ruler_only_on_calibrated_images_and_true_to_the_mm(qtbot, window, read_window):
    ax = read_window.tri.views["axial"]
    ax.vb.scaleBy((0.5, 0.5))  # zoom in: the ruler follows
    qtbot.wait(20)
    ruler = ax.ruler
    assert ruler.isVisible() and ruler.mm in (1, 2, 5, 10, 20, 50, 100, 200)
    a, b = (ax.mapFromScene(ax.vb.mapViewToScene(QPointF(x, 0.0))) for x in (0.0, ruler.mm))
    assert ruler.pixels == pytest.approx(b.x() - a.x(), abs=1.5)  # mm on screen = mm in the image
    assert 0.08 * ax.width() <= ruler.pixels <= 0.2 * ax.width() + 1  # 1-2-5 steps of a fifth
    read_window.actions_by_name["overlay_ruler"].trigger()  # the overlay list turns it off
    assert not ruler.isVisible()
    read_window.actions_by_name["overlay_ruler"].trigger()
    assert ruler.isVisible()
    view = _open_file(qtbot, read_window, DATA_STORE / "RG1_UNCI.dcm")  # spacing unknown
    assert view.volume.meta.get("spacing_unknown") and not view.ruler.isVisible()
