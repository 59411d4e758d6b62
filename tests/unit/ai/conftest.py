"""Fixtures shared by the AI unit tests."""
import pytest

from medviewer.io.load import open_first


@pytest.fixture(scope="module")
def ct(chest_ct_dir):
    """(the real chest CT Volume, its spacing (z, y, x) in mm)."""
    vol = open_first([chest_ct_dir])
    sx, sy, sz = vol.geometry.spacing
    return vol, (sz, sy, sx)
