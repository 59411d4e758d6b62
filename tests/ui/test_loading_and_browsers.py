"""Opening real data through the job bridge: series browser, tag browser, errors, settings."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from medviewer.ui import settings as st
from medviewer.ui.tag_browser import row_matches

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data"
CHEST_CT = DATA / "tcia_cmb_crc_ct_chest"


def _open_and_wait(qtbot, window, paths, timeout=60000):
    with qtbot.waitSignal(window.loader.sig_finished, timeout=timeout):
        window.open_paths([str(p) for p in paths])


def test_open_folder_lists_series_and_loads_it(qtbot, window):
    _open_and_wait(qtbot, window, [CHEST_CT])
    assert not window.errors
    items = window.series_browser.series_items
    assert len(items) == 1
    item = next(iter(items.values()))
    assert item.text(1) == "CT" and item.text(2) == "100"
    v = window.session.active
    assert v is not None and v.shape == (100, 512, 512) and v.modality == "CT"
    qtbot.waitUntil(lambda: not item.icon(0).isNull())  # thumbnail from the loaded volume
    # the skipped non-DICOM file is listed with its reason
    skipped = window.series_browser._skipped
    assert skipped is not None and "PROVENANCE.tsv" in skipped.child(0).text(0)
    tree = window.series_browser  # skipped files come last, folded: the series stay on top
    assert tree.topLevelItem(tree.topLevelItemCount() - 1) is skipped and not skipped.isExpanded()
    assert st.recent_paths(window.settings)[0] == str(CHEST_CT)
    assert window.tri.views["axial"].label("left").text() == "R"


def test_double_click_series_reactivates(qtbot, window):
    _open_and_wait(qtbot, window, [CHEST_CT])
    first = window.session.active
    window.session.set_active(None)
    item = next(iter(window.series_browser.series_items.values()))
    window.series_browser.itemActivated.emit(item, 0)
    assert window.session.active is first


def test_tag_browser_follows_slice_and_filters(qtbot, chest_window, chest_volume):
    tb = chest_window.tag_browser
    z = chest_window.session.cursor_zyx[0]
    qtbot.waitUntil(lambda: tb.path == chest_volume.source_paths[z], timeout=10000)
    assert len(tb.visible_rows()) > 50
    tb.search.setText("PatientName")
    rows = tb.visible_rows()
    assert rows and all("patientname" in kw.lower() for _, kw in rows)
    tb.search.setText("0020,0013")
    assert [kw for _, kw in tb.visible_rows()] == ["InstanceNumber"]
    tb.search.setText("00200032")
    assert [kw for _, kw in tb.visible_rows()] == ["ImagePositionPatient"]
    tb.search.setText("")
    chest_window.session.set_cursor_index((z + 5, 256, 256))
    qtbot.waitUntil(lambda: tb.path == chest_volume.source_paths[z + 5], timeout=10000)


def test_row_matches():
    assert row_matches("patient", "(0010,0010)", "PatientName")
    assert row_matches("(0010,0010)", "(0010,0010)", "PatientName")
    assert row_matches("0010,", "(0010,0010)", "PatientName")
    assert not row_matches("Modality", "(0010,0010)", "PatientName")


def test_missing_path_shows_error_and_app_survives(qtbot, window):
    _open_and_wait(qtbot, window, ["/nonexistent/really_not_here.dcm"])
    assert window.errors and "Not found" in window.errors[-1]
    assert window.session.active is None


def test_decoder_panic_ends_with_an_error_dialog_not_a_spinning_bar(qtbot, window, tmp_path):
    """A corrupt RLE file makes pylibjpeg-rle panic (not an Exception): the open still ends,
    with an error dialog naming the file, and the progress bar goes away."""
    from PySide6.QtWidgets import QMessageBox

    sys.path.insert(0, str(REPO / "tests" / "unit" / "io"))
    from fuzz_mutants import panicking_rle

    bad = panicking_rle(tmp_path)
    _open_and_wait(qtbot, window, [bad])
    assert window.errors and window.errors[-1].startswith("Could not load the series")
    assert "panic_rle.dcm" in window.errors[-1] and "PanicException" in window.errors[-1]
    assert window.findChild(QMessageBox, "errorDialog") is not None
    qtbot.waitUntil(lambda: not window.progress.isVisible() and not window.loader.busy)
    assert window.session.active is None


def test_folder_without_images_reports_skipped_reasons(qtbot, window):
    _open_and_wait(qtbot, window, [DATA / "medmnist_pneumonia"])
    assert window.errors and window.errors[-1].startswith("No images found")


def test_uneven_spacing_warning_banner(qtbot, window):
    folder = DATA / "monai_testing_data" / "tests" / "testing_data" / "CT_DICOM"  # 1.25-202.5 mm
    _open_and_wait(qtbot, window, [folder])
    v = window.session.active
    assert v is not None and v.geometry.is_uneven, window.errors
    assert window.banner.isVisible() and window.banner.text()
    assert window.actions_by_name["resample"].isEnabled()
    co = window.tri.views["coronal"]
    rows, _ = co.reslicer.display_shape("coronal")
    assert rows > v.shape[0]  # true positions on an even display grid


def test_settings_persist_layout_and_recent(qtbot, window):
    window.set_layout("sagittal")
    st.add_recent(window.settings, ["/a", "/b"])
    st.add_recent(window.settings, ["/a"])
    window.close()
    s = st.app_settings()
    assert s.value("view/layout") == "sagittal"
    assert st.recent_paths(s)[:2] == ["/a", "/b"]
    assert s.fileName().startswith(str(Path(__import__("os").environ["MEDVIEWER_SETTINGS_DIR"])))


def test_screenshot_cli_path_writes_nonblank_png(tmp_path):
    out = tmp_path / "shot.png"
    code = ("import sys; from medviewer.ui.launch import run_gui; "
            f"sys.exit(run_gui([{str(CHEST_CT)!r}], False, {str(out)!r}))")
    env = dict(__import__("os").environ, QT_QPA_PLATFORM="offscreen", MEDVIEWER_SETTINGS_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    img = QImage(str(out))
    assert img.width() >= 800 and img.height() >= 600
    ptr = img.convertToFormat(QImage.Format.Format_Grayscale8)
    arr = np.frombuffer(ptr.constBits(), np.uint8, ptr.bytesPerLine() * ptr.height())
    assert arr.std() > 20  # not blank


def test_volume_file_row_gets_its_slice_count_once_loaded(qtbot, window):
    nrrd = CHEST_CT.parent / "pyradiomics_data" / "data" / "brain1_image.nrrd"
    _open_and_wait(qtbot, window, [nrrd])
    item = next(iter(window.series_browser.series_items.values()))
    qtbot.waitUntil(lambda: window.session.active is not None)
    assert item.text(2) == str(window.session.active.shape[0]) != "1"


def test_window_state_from_another_version_is_ignored(qtbot, window):
    """A state saved before docks were added (unversioned, as older releases saved it) must
    not stack the new docks into a column; a state of this version is restored."""
    from PySide6.QtCore import Qt

    from medviewer.ui.main_window import DOCK_STATE_VERSION, MainWindow

    ai_dock = window.ai.dock
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, ai_dock, Qt.Orientation.Vertical)
    assert ai_dock not in window.tabifiedDockWidgets(window.tag_dock)  # now stacked

    def reopen(state):
        window.settings.setValue("window/state", state)
        window.settings.sync()
        other = MainWindow()
        qtbot.addWidget(other)
        tabbed = other.ai.dock in other.tabifiedDockWidgets(other.tag_dock)
        other.close()
        other.bridge.shutdown()
        return tabbed

    assert reopen(window.saveState()) is True  # old, unversioned state: ignored
    assert reopen(window.saveState(DOCK_STATE_VERSION)) is False  # same version: restored
