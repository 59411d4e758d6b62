"""Test-wide settings: offscreen Qt, isolated settings, paths to the shared real data."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MEDVIEWER_AI_PRELOAD", "0")  # tests load torch when they use it

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared real data folder is missing: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def chest_ct_dir(shared_data) -> Path:
    return shared_data / "tcia_cmb_crc_ct_chest"


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    """Keep QSettings (recent files, layout) of tests out of the user's own settings, and
    the default workspace (where e.g. ``predict`` keeps its pseudonym key) out of ~."""
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path_factory.getbasetemp() / "settings"))
    monkeypatch.setenv("MEDVIEWER_WORKSPACE", str(tmp_path_factory.getbasetemp() / "workspace"))


def _pydicom_data_dir() -> Path:
    """pydicom-data's files, opened by path (its get_testdata_files reaches for the network)."""
    import data_store

    return Path(data_store.__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory, shared_data):
    """A real Orthanc (tests/orthanc_server.py) on loopback ports for the whole session, loaded
    with the chest CT (100 slices), the TotalSegmentator DICOM (JPEG 2000, its blank UIDs
    filled in) and a 10-frame enhanced MR from pydicom-data; stopped after."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from orthanc_server import INSTALL_HINT, Orthanc, orthanc_binary, totalseg_with_uids

    if orthanc_binary() is None:
        pytest.fail(INSTALL_HINT)
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        server.upload_files(sorted((shared_data / "tcia_cmb_crc_ct_chest").glob("*.dcm")))
        server.upload(totalseg_with_uids(
            shared_data / "totalseg" / "tests" / "reference_files" / "example_ct_dicom"))
        server.upload_files([_pydicom_data_dir() / "emri_small.dcm"])
        yield server
    finally:
        server.stop()
