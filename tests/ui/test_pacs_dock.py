"""The PACS dock against the real Orthanc (fixture ``orthanc``): servers persist (the password
never shows), a search lists the study, patient details follow "hide patient details", a
series retrieved on the job bridge with a progress bar opens like a local study."""
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

import numpy as np

from medviewer.services import pacs
from medviewer.services.pacs import PacsServer, Query

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orthanc_server import ORTHANC_AET, OUR_AET, PASSWORD, USER  # noqa: E402

CHEST_PID = "CMB-CRC-MSB-01068"


def test_servers_persist_and_the_password_never_shows(window, orthanc):
    from medviewer.ui.pacs.servers import ServerDialog, load_servers

    panel = window.pacs.panel
    web = PacsServer(name="", url=orthanc.dicomweb_url, username=USER, password=PASSWORD)
    panel.set_servers([web])
    assert load_servers(window.settings)[0].password == PASSWORD
    shown = [panel.server_box.itemText(i) for i in range(panel.server_box.count())]
    assert shown and all(PASSWORD not in t for t in shown)
    dlg = ServerDialog(web, panel)
    assert dlg.password.echoMode() == QLineEdit.EchoMode.Password
    assert dlg.server() == web
    dlg.deleteLater()


def test_search_retrieve_a_series_and_it_opens(window, qtbot, orthanc, tmp_path):
    panel = window.pacs.panel
    assert window.docks["pacsDock"].widget() is panel
    panel.cache_dir = tmp_path / "cache"
    panel.set_servers([PacsServer(name="Test Orthanc", host="127.0.0.1", port=orthanc.dicom_port,
                                  called_aet=ORTHANC_AET, calling_aet=OUR_AET, timeout=10)])
    panel.patient_id.setText(CHEST_PID)
    qtbot.mouseClick(panel.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.tree.topLevelItemCount() == 1, timeout=20000)
    study = panel.tree.topLevelItem(0)
    assert CHEST_PID in study.text(0)
    assert study.text(1) == "19600329"
    window.privacy.set_hidden(True)
    assert study.text(0) == "(hidden)" and study.text(1) == "(hidden)"
    window.privacy.set_hidden(False)
    assert CHEST_PID in study.text(0) and study.text(1) == "19600329"
    study.setExpanded(True)
    qtbot.waitUntil(lambda: study.childCount() >= 1, timeout=20000)  # + SEGs other tests sent
    (series,) = [study.child(i) for i in range(study.childCount())
                 if study.child(i).text(2) == "CT"]
    assert series.text(2) == "CT" and series.text(3) == "100" and series.text(4) == "lung"
    panel.tree.setCurrentItem(series)
    assert panel.retrieve_button.isEnabled()
    qtbot.mouseClick(panel.retrieve_button, Qt.MouseButton.LeftButton)
    assert panel.cancel_button.isEnabled() and panel.progress.isVisible()
    qtbot.waitUntil(lambda: window.session.active is not None, timeout=60000)
    vol = window.session.active
    assert vol.shape == (100, 512, 512) and vol.modality == "CT"
    files = list((tmp_path / "cache").rglob("*.dcm"))
    assert len(files) == 100
    assert all(str(tmp_path / "cache") in p for p in vol.source_paths)
    assert not panel.cancel_button.isEnabled() and not panel.progress.isVisible()

    # paint a label and send it back as a DICOM SEG to the server the image came from
    ctl = window.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    ctl.new_labelmap()
    mask = np.zeros(vol.shape, bool)
    mask[45:55, 200:260, 200:260] = True
    ctl.apply_voxels(np.flatnonzero(mask.reshape(-1)), 1, "brush")
    server = panel.servers[0]
    segs = Query(level="series", modality="SEG", study_uid=vol.meta.get("StudyInstanceUID", "")
                 or study.data(0, Qt.ItemDataRole.UserRole).study_uid)
    before = {m.series_uid for m in pacs.find(server, segs)}
    panel.server_box.setCurrentIndex(-1)  # the origin is remembered, not the selection
    qtbot.mouseClick(panel.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.status.text().startswith("Sent the DICOM SEG"), timeout=60000)
    (new,) = [m for m in pacs.find(server, segs) if m.series_uid not in before]
    assert new.n_instances == 1 and new.patient_id == CHEST_PID


def test_cancel_a_retrieve_from_the_dock_keeps_what_arrived(window, qtbot, orthanc, tmp_path):
    panel = window.pacs.panel
    panel.cache_dir = tmp_path / "cache"
    server = PacsServer(name="Test Orthanc", host="127.0.0.1", port=orthanc.dicom_port,
                        called_aet=ORTHANC_AET, calling_aet=OUR_AET, timeout=10)
    panel.set_servers([server])
    (study,) = pacs.find(server, Query(level="study", patient_id=CHEST_PID))
    panel.show_studies([study])
    panel.tree.setCurrentItem(panel.tree.topLevelItem(0))  # the whole study
    panel.progress.valueChanged.connect(
        lambda v: v > 0 and panel.cancel_button.isEnabled() and panel.cancel_button.click())
    qtbot.mouseClick(panel.retrieve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert panel.status.text().startswith("Retrieve cancelled")
    kept = list((tmp_path / "cache").rglob("*.dcm"))
    assert 0 < len(kept) < 100 and window.session.active is None
