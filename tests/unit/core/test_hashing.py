"""image_hash: stable across loads of the same real series, different for other data."""
import dataclasses

import numpy as np
import pytest

from _core_data import OBLIQUE_AX
from medviewer.core.geometry import Geometry
from medviewer.core.hashing import image_hash
from medviewer.core.volume import Volume
from medviewer.io.load import open_first


@pytest.fixture(scope="module")
def chest(chest_ct_dir):
    return open_first([chest_ct_dir])


def test_same_series_loaded_twice_gives_the_same_hash(chest, chest_ct_dir):
    again = open_first([chest_ct_dir])
    assert again is not chest and not np.shares_memory(again.array, chest.array)
    h = image_hash(chest)
    assert len(h) == 64 and int(h, 16) >= 0
    assert image_hash(again) == h


def test_other_series_voxel_or_geometry_change_gives_another_hash(chest):
    h = image_hash(chest)
    assert image_hash(open_first([OBLIQUE_AX])) != h
    arr = chest.array.copy()
    arr[50, 256, 256] += 1
    assert image_hash(dataclasses.replace(chest, array=arr)) != h
    g = chest.geometry
    moved = Geometry(g.shape, g.spacing, (g.origin[0] + 0.5, g.origin[1], g.origin[2]), g.direction)
    assert image_hash(dataclasses.replace(chest, array=chest.array.copy(), geometry=moved)) != h
    # same numbers in another dtype are another image
    as32 = dataclasses.replace(chest, array=chest.array.astype(np.int32))
    assert image_hash(as32) != h


def test_byte_order_does_not_matter():
    g = Geometry((2, 3, 4))
    a = np.arange(24, dtype="<i2").reshape(2, 3, 4)
    b = a.astype(">i2")
    assert image_hash(Volume(a, g)) == image_hash(Volume(b, g))
