"""Label surfaces (services.surfaces) on TotalSegmentator's example CT and its 41 labels:
enclosed volumes against voxel counts, world-mm bounds against the labels' voxels, and an
edit's partial re-mesh against a whole re-mesh."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("vtkmodules.vtkFiltersCore", reason="VTK is not installed")

from medviewer.core.geometry import Geometry  # noqa: E402
from medviewer.core.labelmap import count_values  # noqa: E402
from medviewer.io.volume_files import read_volume_file  # noqa: E402
from medviewer.services import surfaces as sf  # noqa: E402
from medviewer.services.annotations import read_label_file  # noqa: E402


@pytest.fixture(scope="module")
def ts(shared_data):
    folder = shared_data / "totalseg" / "tests" / "reference_files"
    vol = read_volume_file(folder / "example_ct_sm.nii.gz")
    labels, _table, _warnings = read_label_file(folder / "example_seg.nii.gz", vol.geometry)
    return vol, np.asarray(labels)


def _voxel_mm3(geo: Geometry) -> float:
    return float(np.prod(geo.spacing))


def test_every_label_is_meshed_and_unsmoothed_volumes_equal_the_voxel_counts(ts):
    vol, labels = ts
    counts = count_values(labels)
    present = [int(v) for v in np.flatnonzero(counts) if v]
    assert len(present) == 41
    surfaces = sf.mesh_labels(labels, vol.geometry, smoothing=0)
    assert sorted(surfaces) == present
    for v, surf in surfaces.items():
        # labels cut by the image's edge are closed there too: the volume is exact
        assert surf.volume_mm3() == pytest.approx(counts[v] * _voxel_mm3(vol.geometry), rel=1e-6)


def test_smoothed_volumes_of_the_large_organs_within_5_percent(ts):
    vol, labels = ts
    counts = count_values(labels)
    surfaces = sf.mesh_labels(labels, vol.geometry)
    large = [v for v in surfaces if counts[v] >= 5000]
    assert len(large) >= 5
    for v in large:
        assert surfaces[v].volume_mm3() == pytest.approx(counts[v] * _voxel_mm3(vol.geometry), rel=0.05)
        assert surfaces[v].volume_mm3() > 0  # normals point out of the label


def test_bounds_in_world_mm_are_the_labels_voxel_extent(ts):
    vol, labels = ts
    geo = vol.geometry
    half = np.abs(geo.direction_matrix @ (np.asarray(geo.spacing) / 2.0))
    surfaces = sf.mesh_labels(labels, geo, smoothing=0)
    for v in (5, 20, 1):  # liver-sized, medium and small organs
        zyx = np.argwhere(labels == v)
        lps = geo.index_zyx_to_lps(zyx.astype(float))
        lo, hi = surfaces[v].bounds()
        np.testing.assert_allclose(lo, lps.min(axis=0) - half, atol=1e-3)
        np.testing.assert_allclose(hi, lps.max(axis=0) + half, atol=1e-3)
    smooth = sf.mesh_labels(labels, geo, values=[5])[5]
    lo, hi = smooth.bounds()
    zyx = np.argwhere(labels == 5)
    lps = geo.index_zyx_to_lps(zyx.astype(float))
    # smoothing moves a vertex within its cell: at most one voxel beyond the voxels' centres
    assert np.all(lo >= lps.min(axis=0) - 2 * half - 1e-3)
    assert np.all(hi <= lps.max(axis=0) + 2 * half + 1e-3)


def test_a_left_handed_grid_still_gives_outward_normals(ts):
    vol, labels = ts
    g = vol.geometry
    d = g.direction_matrix.copy()
    d[:, 2] *= -1  # slices stacked the other way: a left-handed index frame
    flipped = Geometry(g.shape, g.spacing, g.origin, tuple(d.ravel()))
    surf = sf.mesh_labels(labels, flipped, values=[5], smoothing=0)[5]
    assert surf.volume_mm3() == pytest.approx(np.count_nonzero(labels == 5) * _voxel_mm3(g), rel=1e-6)


def test_an_edit_remeshes_only_its_labels_in_their_box_as_a_whole_mesh_would(ts):
    vol, labels = ts
    geo = vol.geometry
    lab = labels.copy()
    boxes = sf.label_boxes(lab)
    assert boxes[5] == tuple((int(a.min()), int(a.max()) + 1) for a in np.nonzero(lab == 5))
    # a brush-sized edit: a 5-voxel ball of label 5 painted over its neighbours
    z, y, x = np.argwhere(lab == 5).mean(axis=0).astype(int) + np.array([0, 0, 12])
    zz, yy, xx = np.ogrid[:lab.shape[0], :lab.shape[1], :lab.shape[2]]
    ball = (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= 4
    idx = np.flatnonzero(ball.ravel())
    old = lab.ravel()[idx].copy()
    lab.ravel()[idx] = 5
    plan = sf.remesh_plan(idx, old, np.full(len(idx), 5, lab.dtype), lab.shape, boxes)
    others = {int(v) for v in np.unique(old) if v and v != 5}
    assert set(plan.values) == {5} | others
    crops = plan.crops(lab)
    assert all(crop.size < lab.size / 2 for _v, crop, _o in crops)  # regions, not the image
    part = sf.mesh_crops(crops, geo)
    whole = sf.mesh_labels(lab, geo, plan.values)
    for v in plan.values:
        assert part[v].n_triangles == whole[v].n_triangles
        assert part[v].volume_mm3() == pytest.approx(whole[v].volume_mm3(), rel=1e-4)
        np.testing.assert_allclose(part[v].bounds()[0], whole[v].bounds()[0], atol=1e-3)
    # the box grew to hold the painted voxels
    assert all(boxes[5][i][0] <= c < boxes[5][i][1] for i, c in enumerate((z, y, x)))


def test_a_label_erased_entirely_gets_an_empty_surface(ts):
    vol, labels = ts
    lab = labels.copy()
    idx = np.flatnonzero(lab.ravel() == 1)
    lab.ravel()[idx] = 0
    plan = sf.remesh_plan(idx, np.ones(len(idx), lab.dtype), np.zeros(len(idx), lab.dtype),
                          lab.shape, sf.label_boxes(labels))
    assert plan.values == (1,)
    out = sf.mesh_crops(plan.crops(lab), vol.geometry)
    assert out[1].n_triangles == 0 and out[1].volume_mm3() == 0.0


def test_bad_input_is_refused():
    geo = Geometry((2, 2, 2))
    with pytest.raises(ValueError, match="integer"):
        sf.mesh_labels(np.zeros((2, 2, 2), np.float32), geo)
    assert sf.mesh_labels(np.zeros((2, 2, 2), np.uint8), geo) == {}
