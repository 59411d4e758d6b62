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
