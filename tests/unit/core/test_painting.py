"""Painting algorithms on the real chest CT and TotalSegmentator's reference segmentation:
brush discs/spheres, threshold paint, 2D/3D flood fill, polygon fill, interpolation."""
import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medviewer.core.edits import StrokeRecorder
from medviewer.core.geometry import Geometry
from medviewer.core.labelmap import LabelMap
from medviewer.core.painting import (brush_indices, brush_segment_indices, flood_fill, in_range,
                                     interpolate_between_slices, label_indices, polygon_indices,
                                     polygon_mask)
from medviewer.io.load import open_first

LUNG_SEED = (50, 256, 144)  # right lung, mid-chest slice (HU about -770)
AIR = (-1000.0, -400.0)


@pytest.fixture(scope="module")
def chest(chest_ct_dir):
    return open_first([chest_ct_dir])


def _mm_distance_grid(shape, spacing_zyx, centre):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_zyx)))


@pytest.mark.parametrize("fixed_axis", [0, 1, 2, None])
def test_brush_matches_brute_force_ball_with_anisotropic_spacing(fixed_axis):
    g = Geometry((20, 40, 50), spacing=(0.7, 0.9, 2.5))
    centre = (10, 20, 25)
    d = _mm_distance_grid(g.shape, (2.5, 0.9, 0.7), centre)
    ref = d <= 6.0
    if fixed_axis is not None:
        plane = np.zeros(g.shape, bool)
        sl = [slice(None)] * 3
        sl[fixed_axis] = centre[fixed_axis]
        plane[tuple(sl)] = True
        ref &= plane
    idx = brush_indices(g, centre, 6.0, fixed_axis)
    assert np.array_equal(idx, np.flatnonzero(ref))  # sorted, unique, exact


def test_brush_clipped_at_the_volume_edges_and_outside():
    g = Geometry((5, 30, 30), spacing=(1.0, 1.0, 1.0))
    idx = brush_indices(g, (0, 0, 29), 4.0, None)
    ref = _mm_distance_grid(g.shape, (1, 1, 1), (0, 0, 29)) <= 4.0
    assert np.array_equal(idx, np.flatnonzero(ref))
    assert brush_indices(g, (2, -10, 5), 4.0, 0).size == 0
    assert len(brush_indices(g, (2, 5, 5), 0.1, 0)) == 1  # tiny radius: the centre voxel


def test_segment_has_no_gaps_between_far_mouse_positions():
    g = Geometry((3, 100, 100), spacing=(1.0, 1.0, 1.0))
    idx = brush_segment_indices(g, (1, 10, 10), (1, 10, 80), 3.0, 0)
    m = np.zeros(g.shape, bool).reshape(-1)
    m[idx] = True
    assert m.reshape(g.shape)[1, 10, 10:81].all()


def test_threshold_paint_on_real_ct_equals_brute_force(chest):
    g, img = chest.geometry, chest.array
    centre = (50, 256, 178)  # lung / chest-wall boundary: both air and tissue under the brush
    idx = in_range(brush_indices(g, centre, 10.0, 0), img, *AIR)
    sx, sy, sz = g.spacing
    slice_d = _mm_distance_grid(img.shape[1:], (sy, sx), centre[1:])
    ref2d = (slice_d <= 10.0) & (img[50] >= AIR[0]) & (img[50] <= AIR[1])
    ref = np.zeros(img.shape, bool)
    ref[50] = ref2d
    assert np.array_equal(idx, np.flatnonzero(ref))
    assert 0 < ref2d.sum() < (slice_d <= 10.0).sum()  # the range really excluded tissue
    lm = LabelMap(g)
    rec = StrokeRecorder(lm, 1, "threshold")
    rec.add(idx)
    edit = rec.finish()
    values = img.reshape(-1)[edit.indices]
    assert values.min() >= AIR[0] and values.max() <= AIR[1]


def test_3d_flood_fill_of_lung_air_stays_inside_the_body(chest):
    img = chest.array
    fill = flood_fill(img, LUNG_SEED, *AIR, fixed_axis=None)
    # independent reference: scipy's face-connected component containing the seed
    lab, _ = ndimage.label((img >= AIR[0]) & (img <= AIR[1]))
    ref = np.flatnonzero(lab == lab[LUNG_SEED])
    assert np.array_equal(fill, ref)
    assert fill.size > 500_000  # both lungs (joined by the airways), not a pocket
    lm = LabelMap(chest.geometry)
    edit = lm.set_voxels(fill, 1, 1, "fill3d")
    assert edit.voxels == fill.size
    m = lm.labels
    # nothing leaked to the in-plane image border or into the air around the patient
    assert not m[:, 0, :].any() and not m[:, -1, :].any()
    assert not m[:, :, 0].any() and not m[:, :, -1].any()
    assert AIR[0] <= img[50, 256, 2] <= AIR[1]  # air beside the patient, in the fill range
    outside_air = lab == lab[50, 256, 2]
    assert outside_air.sum() > 1_000_000 and not m[outside_air].any()
    # the body wall around the seed stays 0: along the seed row, tissue separates lung and air
    row = img[50, 256]
    wall = np.flatnonzero(row > AIR[1])
    assert wall.size and not m[50, 256, wall].any()
    assert flood_fill(img, (50, 256, 256), *AIR, fixed_axis=None).size == 0  # seed in tissue


@pytest.mark.parametrize("fixed_axis", [0, 1])
def test_2d_flood_fill_only_touches_the_seed_slice(chest, fixed_axis):
    img = chest.array
    fill = flood_fill(img, LUNG_SEED, *AIR, fixed_axis=fixed_axis)
    pos = np.unravel_index(fill, img.shape)
    assert np.all(pos[fixed_axis] == LUNG_SEED[fixed_axis])
    plane = np.take(img, LUNG_SEED[fixed_axis], axis=fixed_axis)
    lab, _ = ndimage.label((plane >= AIR[0]) & (plane <= AIR[1]))
    seed2 = tuple(s for a, s in enumerate(LUNG_SEED) if a != fixed_axis)
    ref_plane = lab == lab[seed2]
    got = np.zeros(img.shape, bool)
    got.reshape(-1)[fill] = True
    assert np.array_equal(np.take(got, LUNG_SEED[fixed_axis], axis=fixed_axis), ref_plane)
    assert got.sum() == ref_plane.sum() > 1000
    assert np.all(np.diff(fill) > 0)


def _inside_even_odd(r, c, pts):
    inside = False
    n = len(pts)
    for i in range(n):
        (r1, c1), (r2, c2) = pts[i], pts[(i + 1) % n]
        if (r1 > r) != (r2 > r) and c < c1 + (r - r1) * (c2 - c1) / (r2 - r1):
            inside = not inside
    return inside


def _dist_to_outline(r, c, pts):
    best = np.inf
    for i in range(len(pts)):
        a, b = np.asarray(pts[i], float), np.asarray(pts[(i + 1) % len(pts)], float)
        t = np.clip(np.dot((r, c) - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0, 1)
        best = min(best, float(np.linalg.norm((r, c) - (a + t * (b - a)))))
    return best


@pytest.mark.parametrize("pts", [
    [(3.2, 4.7), (30.5, 9.1), (12.3, 25.8), (33.0, 33.4), (4.4, 36.2)],  # concave
    [(5, 5), (35, 30), (5, 30), (35, 5)],  # self-intersecting bow tie (even-odd)
    [(2.5, 2.5), (2.5, 37.5), (37.5, 37.5), (37.5, 2.5)],  # axis-aligned square
])
def test_polygon_fill_against_point_in_polygon_reference(pts):
    mask = polygon_mask((40, 45), pts)
    for r in range(40):
        for c in range(45):
            inside = _inside_even_odd(r, c, pts)
            if inside:
                assert mask[r, c], (r, c)
            elif mask[r, c]:  # only pixels the outline passes through may be added
                assert _dist_to_outline(r, c, pts) <= np.sqrt(0.5) + 1e-6, (r, c)
    # every pixel whose centre lies on the outline is included
    for r in range(40):
        for c in range(45):
            if _dist_to_outline(r, c, pts) < 1e-9:
                assert mask[r, c]


def test_polygon_indices_on_each_plane():
    shape = (10, 20, 30)
    pts = [(2, 3), (2, 8), (6, 8), (6, 3)]
    for axis, k in ((0, 4), (1, 7), (2, 11)):
        idx = polygon_indices(shape, axis, k, pts)
        pos = np.unravel_index(idx, shape)
        assert np.all(pos[axis] == k) and len(idx) == 5 * 6
        others = [p for a, p in enumerate(pos) if a != axis]
        assert others[0].min() == 2 and others[0].max() == 6
        assert others[1].min() == 3 and others[1].max() == 8
    assert polygon_indices(shape, 0, 10, pts).size == 0


@pytest.fixture(scope="module")
def totalseg(shared_data):
    img = nib.load(shared_data / "totalseg" / "tests" / "reference_files" / "example_seg.nii.gz")
    return np.ascontiguousarray(np.asarray(img.dataobj).transpose(2, 1, 0))  # (z, y, x)


@pytest.mark.parametrize("value,axis", [(5, 0), (1, 0), (5, 1)])  # liver, spleen
def test_interpolation_recovers_removed_slices_of_a_real_organ(totalseg, value, axis):
    organ = totalseg == value
    keep = np.zeros(organ.shape[axis], bool)
    keep[::3] = True
    kept_idx = np.flatnonzero(keep & organ.any(axis=tuple(a for a in range(3) if a != axis)))
    sparse = np.where(np.expand_dims(keep, tuple(a for a in range(3) if a != axis)), totalseg, 0)
    sparse = np.where(sparse == value, value, 0).astype(np.uint8)
    idx, new = interpolate_between_slices(sparse, value, axis=axis)
    assert np.all(new == value) and np.all(np.diff(idx) > 0)
    out = sparse.copy()
    out.reshape(-1)[idx] = new
    assert np.array_equal(np.take(out, kept_idx, axis=axis), np.take(sparse, kept_idx, axis=axis))
    removed = [k for k in range(kept_idx[0], kept_idx[-1] + 1) if not keep[k]]
    got = np.take(out, removed, axis=axis) == value
    ref = np.take(organ, removed, axis=axis)
    dice = 2 * (got & ref).sum() / (got.sum() + ref.sum())
    assert dice >= 0.85, dice


def test_interpolation_fills_only_background_and_never_locked_labels(totalseg):
    sparse = np.zeros_like(totalseg)
    sparse[::3][totalseg[::3] == 5] = 5
    sparse[totalseg == 6] = 6  # stomach kept on every slice, locked
    idx, new = interpolate_between_slices(sparse, 5)
    assert np.all(sparse.reshape(-1)[idx] == 0)
    g = Geometry(sparse.shape, spacing=(3.0, 3.0, 3.0))
    lm = LabelMap(g, array=sparse.copy())
    lm.table.set_locked(6, True)
    taken = idx[: len(idx) // 2]
    lm.labels.reshape(-1)[taken] = 6  # half of the targets now belong to a locked label
    stomach = lm.labels == 6
    edit = lm.set_voxels(idx, new, 5, "interpolate")
    assert np.all(edit.old == 0) and edit.voxels == len(idx) - len(taken)
    assert np.array_equal(lm.labels == 6, stomach)


def test_label_indices_and_remove_label(totalseg):
    g = Geometry(totalseg.shape, spacing=(3.0, 3.0, 3.0))
    lm = LabelMap(g, array=totalseg)
    spleen = label_indices(lm.labels, 1)
    assert np.array_equal(spleen, np.flatnonzero(totalseg == 1))
    edit = lm.clear_label(1)
    assert edit.voxels == spleen.size and not (lm.labels == 1).any()
    assert np.array_equal(lm.labels[totalseg != 1], totalseg[totalseg != 1])
