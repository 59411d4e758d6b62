"""Axis flips into the LPS order the models were trained on, on the real scans' geometry."""
from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.geometry import Geometry
from medviewer.core.orientation import AxisFlips


def _geometry(direction, shape=(4, 5, 6)):
    return Geometry(shape=shape, spacing=(1.0, 1.0, 2.0), direction=tuple(direction))


def test_an_lps_series_is_left_alone():
    f = AxisFlips.of(_geometry((1, 0, 0, 0, 1, 0, 0, 0, 1)))
    arr = np.arange(120).reshape(4, 5, 6)
    assert not f and f.view(arr) is arr and f.z(1, 4) == 1


def test_a_ras_nifti_is_flipped_in_x_and_y_and_comes_back(shared_data):
    from medviewer.io.load import open_first

    vol = open_first([shared_data / "totalseg/tests/reference_files/example_ct.nii.gz"])
    f = AxisFlips.of(vol.geometry)
    assert f.axes == (1, 2) and not f.permuted
    view = f.view(vol.array)
    assert np.shares_memory(view, vol.array)  # a view, no copy
    # the view's first row and column are the stored array's last ones
    assert view[0, 0, 0] == vol.array[0, -1, -1]
    out = np.ascontiguousarray(view).copy()
    assert np.array_equal(f.restore(out), vol.array)


@pytest.mark.parametrize("direction, axes", [
    ((1, 0, 0, 0, 1, 0, 0, 0, -1), (0,)),  # feet first
    ((-1, 0, 0, 0, 1, 0, 0, 0, -1), (0, 2)),
])
def test_flips_of_z_map_slice_indices_both_ways(direction, axes):
    f = AxisFlips.of(_geometry(direction))
    assert f.axes == axes
    arr = np.random.default_rng(0).integers(0, 9, (5, 4, 3)).astype(np.uint8)
    view = f.view(arr)
    assert np.array_equal(view[f.z(1, 5)], arr[1][:, ::-1] if 2 in axes else arr[1])
    assert f.z_range((0, 2), 5) == (3, 5)
    back = f.restore(np.ascontiguousarray(view).copy())
    assert np.array_equal(back, arr)


def test_a_sagittal_stack_is_not_touched():
    # index x along P, y along S, z along L: not an axial series
    f = AxisFlips.of(_geometry((0, 0, 1, 1, 0, 0, 0, 1, 0)))
    assert f.permuted and not f.axes
