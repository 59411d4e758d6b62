"""UI test fixtures: real volumes built with pydicom (independent of medviewer.io)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from annot_helpers import close_discarding

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume, WindowHint

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CHEST_CT = DATA / "tcia_cmb_crc_ct_chest"


def volume_from_dicom_folder(folder: Path) -> Volume:
    """A Volume (z sorted along the slice normal, rescaled values) read with pydicom."""
    dss = [pydicom.dcmread(p) for p in sorted(Path(folder).glob("*.dcm"))]
    iop = np.asarray(dss[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)))
    arr = np.stack([d.pixel_array.astype(np.float32) * float(d.get("RescaleSlope", 1))
                    + float(d.get("RescaleIntercept", 0)) for d in dss])
    if dss[0].Modality == "CT":
        arr = arr.astype(np.int16)
    pos = np.asarray([d.ImagePositionPatient for d in dss], dtype=float)
    dz = float(np.median(np.diff(pos @ normal))) if len(dss) > 1 else 1.0
    ps = [float(v) for v in dss[0].PixelSpacing]
    geo = Geometry(shape=arr.shape, spacing=(ps[1], ps[0], dz), origin=tuple(pos[0]),
                   direction=tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel()))
    wc, ww = dss[0].get("WindowCenter"), dss[0].get("WindowWidth")
    window = WindowHint(float(np.ravel(wc)[0]), float(np.ravel(ww)[0])) if wc is not None else None
    return Volume(arr, geo, modality=str(dss[0].Modality), description=str(dss[0].get("SeriesDescription", "")),
                  units="HU" if dss[0].Modality == "CT" else "", window=window,
                  source_paths=[str(d.filename) for d in dss], uid=str(dss[0].SeriesInstanceUID))


@pytest.fixture(scope="session")
def chest_volume() -> Volume:
    return volume_from_dicom_folder(CHEST_CT)


@pytest.fixture(scope="session")
def mono1_volume() -> Volume:
    """RG1_UNCI.dcm (pydicom-data): a MONOCHROME1 chest radiograph, as a 1-slice volume."""
    path = pydicom.data.get_testdata_file("RG1_UNCI.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    arr = ds.pixel_array[None].astype(np.float32)
    given = [float(v) for v in ds.get("ImagerPixelSpacing", ds.get("PixelSpacing", [0, 0]))]
    ps = [v if v > 0 else 1.0 for v in given]
    geo = Geometry(shape=arr.shape, spacing=(ps[1], ps[0], 1.0))
    unknown = {"spacing_unknown": True} if min(given) <= 0 else {}  # as the app's reader says
    return Volume(arr, geo, modality=str(ds.Modality), invert=True, source_paths=[path],
                  window=WindowHint(float(arr.mean()), float(np.ptp(arr))), meta=unknown)


@pytest.fixture(scope="session", autouse=True)
def _row_major_images():
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major")


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread(qapp):
    """As the app does (``run_gui``): cyclic garbage is collected on the GUI thread only,
    and what a test's widgets left behind is collected here at its end, not during a later
    test on a worker thread (where PySide hands the deletion back to the GUI thread and a
    signal emission there deadlocked once in CI)."""
    from medviewer.ui.gui_gc import GuiThreadCollector

    collector = GuiThreadCollector().start()
    yield collector
    collector.stop(collect=True)
    collector.deleteLater()


@pytest.fixture(autouse=True)
def _settings_per_test(tmp_path, monkeypatch):
    """Each UI test starts from empty settings (a saved layout must not leak into the next)."""
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))


@pytest.fixture
def window(qtbot):
    """A MainWindow (no paths opened), shown offscreen, closed after the test."""
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    yield win
    close_discarding(win)
    win.bridge.shutdown()


@pytest.fixture
def chest_window(window, chest_volume):
    window.session.add_volume(chest_volume)
    return window


@pytest.fixture(autouse=True)
def _workspace_per_test(tmp_path, monkeypatch):
    """Annotations (label store, stroke journals) go to a tmp workspace, never to ~."""
    monkeypatch.setenv("MEDVIEWER_WORKSPACE", str(tmp_path / "workspace"))


@pytest.fixture
def annot(qtbot, chest_window):
    """The chest CT window once the annotation controller checked the workspace."""
    ctl = chest_window.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    chest_window.activateWindow()
    return chest_window
