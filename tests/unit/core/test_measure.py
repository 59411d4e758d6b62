"""Distances in mm and ROI statistics."""
from pathlib import Path

import numpy as np
import pydicom
import pytest

from _core_data import CHEST_CT, DATA, OBLIQUE_ALL, OBLIQUE_AX, geometry_from_folder  # noqa: F401
from medviewer.core.geometry import Geometry
from medviewer.core.measure import distance_mm, ellipse_mask, rect_mask, roi_stats




def test_distance_on_chest_ct_geometry():
    g = geometry_from_folder(CHEST_CT)
    assert distance_mm(g, (0, 0, 0), (0, 0, 100)) == pytest.approx(89.8438, abs=1e-3)
    assert distance_mm(g, (0, 0, 0), (10, 0, 0)) == pytest.approx(25.0, abs=1e-3)
    assert distance_mm(g, (0, 0, 0), (0, 30, 40)) == pytest.approx(50 * 0.898438, abs=1e-3)


def test_distance_is_rotation_invariant_on_oblique_mr():
    g = geometry_from_folder(OBLIQUE_ALL)
    assert distance_mm(g, (1, 2, 3), (4, 6, 3)) == pytest.approx(15.0, abs=1e-4)  # 3 mm pixels


def test_distance_uses_true_uneven_offsets():
    g = Geometry(shape=(4, 8, 8), spacing=(1, 1, 1.25), slice_offsets=(0, 1.25, 2.5, 202.5))
    assert distance_mm(g, (2, 0, 0), (3, 0, 0)) == pytest.approx(200.0)


def test_rect_roi_equals_numpy():
    rng = np.random.default_rng(1)
    img = rng.normal(40, 12, size=(64, 80)).astype(np.float32)
    m = rect_mask(img.shape, 30, 50, 10, 20)  # corners in any order
    ref = img[10:31, 20:51].astype(np.float64)
    s = roi_stats(img, m, 0.5, 0.8)
    assert s.n_pixels == ref.size
    assert s.mean == pytest.approx(ref.mean()) and s.sd == pytest.approx(ref.std())
    assert s.min == ref.min() and s.max == ref.max()
    assert s.area_mm2 == pytest.approx(ref.size * 0.4)


def test_ellipse_area_close_to_analytic():
    m = ellipse_mask((400, 400), 100, 50, 300, 350)
    s = roi_stats(np.ones((400, 400)), m, 1.0, 1.0)
    assert s.area_mm2 == pytest.approx(np.pi * 100 * 150, rel=0.01)
    assert s.mean == 1.0 and s.sd == 0.0


def test_empty_roi_and_rgb_rejected():
    s = roi_stats(np.ones((4, 4)), np.zeros((4, 4), bool), 1, 1)
    assert s.n_pixels == 0 and np.isnan(s.mean)
    with pytest.raises(ValueError):
        roi_stats(np.ones((4, 4, 3)), np.ones((4, 4), bool), 1, 1)
