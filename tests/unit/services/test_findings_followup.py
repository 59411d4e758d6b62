"""Follow-up: a baseline and a follow-up registered to it have their findings matched by label
and centroid distance, and the change of each is measured. The follow-up is TotalSegmentator's
reference CT moved by a known rigid transform (4 degrees, 6.4 mm in-plane) with its labels moved the same
way and the liver shrunk by one voxel all round; registration (services.registration) brings
it back."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medviewer.core.findings import Finding, FindingChange, match_findings
from medviewer.core.volume import Volume
from medviewer.io.load import open_first
from medviewer.services.findings import case_findings, compare_time_points

TS = "totalseg/tests/reference_files"


def _sitk(array, g):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(g.spacing)
    img.SetOrigin(g.origin)
    img.SetDirection(g.direction)
    return img


def _moved(array, g, transform, nearest: bool, fill):
    import SimpleITK as sitk

    img = _sitk(array, g)
    out = sitk.Resample(img, img, transform,
                        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, fill)
    return sitk.GetArrayFromImage(out).astype(array.dtype)


@pytest.mark.slow
def test_registered_follow_up_findings_are_matched_and_their_change_measured(shared_data):
    import SimpleITK as sitk

    from medviewer.services.registration import register

    ct = open_first([shared_data / TS / "example_ct_sm.nii.gz"])
    labels = np.asarray(open_first([shared_data / TS / "example_seg.nii.gz"]).array).astype(np.uint8)
    g = ct.geometry
    t = sitk.Euler3DTransform()
    centre = g.index_zyx_to_lps((np.asarray(g.shape) - 1) / 2.0)
    t.SetCenter(tuple(float(v) for v in centre))
    t.SetRotation(0.0, 0.0, np.radians(4.0))
    t.SetTranslation((5.0, -4.0, 0.0))  # in-plane: a shift along z would push slices out
    moving_img = _moved(np.asarray(ct.array), g, t, False, -1024.0)
    moving_labels = _moved(labels, g, t, True, 0)
    liver = moving_labels == 5
    shrunk = ndimage.binary_erosion(liver, structure=np.ones((1, 3, 3), bool))
    moving_labels[liver & ~shrunk] = 0
    moving = Volume(moving_img, g, modality="CT", units="HU")

    result = register(ct, moving, "rigid")
    changes = compare_time_points(ct, labels, moving, moving_labels, result.transform)
    base = case_findings(ct, labels)
    assert [c.baseline for c in changes if c.baseline is not None] == base
    big = [c for c in changes if c.baseline is not None and c.baseline.volume_ml > 20]
    assert len(big) >= 10
    for c in big:
        assert c.status == "matched" and c.followup.label == c.baseline.label
        assert c.distance_mm < 4.0, (c.baseline.name, c.distance_mm)
        if c.baseline.label != 5:  # unchanged organs: the same within resampling
            assert abs(c.volume_change_pct) < 4.0, (c.baseline.name, c.volume_change_pct)
    (liv,) = [c for c in big if c.baseline.label == 5]
    expected = 100.0 * (shrunk.sum() - liver.sum()) / liver.sum()
    assert expected < -10
    assert liv.volume_change_pct == pytest.approx(expected, abs=3.0)
    assert liv.long_change_mm < 0 and liv.short_change_mm < 0


def _f(label, lps, ml, number=1):
    return Finding(number=number, label=label, name=f"L{label}", component=1, n_voxels=1,
                   volume_ml=ml, slices=(0, 0), bbox_min_zyx=(0, 0, 0), bbox_max_zyx=(0, 0, 0),
                   bbox_min_lps=lps, bbox_max_lps=lps, centroid_zyx=(0, 0, 0), centroid_lps=lps,
                   measure_slice=0, centre_zyx=(0, 0, 0), largest_slice=0, long_axis=None,
                   short_axis=None, mean=None, sd=None)


def test_matching_rules():
    """Same label only, closest first, within the distance; the rest gone or new."""
    base = [_f(1, (0, 0, 0), 2.0), _f(1, (30, 0, 0), 1.0), _f(2, (0, 0, 0), 1.0)]
    follow = [_f(1, (28, 0, 0), 1.5), _f(1, (3, 0, 0), 1.0), _f(2, (50, 0, 0), 1.0)]
    out = match_findings(base, follow, max_distance_mm=20)
    assert [c.status for c in out] == ["matched", "matched", "gone", "new"]
    assert out[0].followup is follow[1] and out[0].distance_mm == pytest.approx(3.0)
    assert out[0].volume_change_ml == pytest.approx(-1.0) and out[0].volume_change_pct == pytest.approx(-50)
    assert out[1].followup is follow[0] and out[1].volume_change_pct == pytest.approx(50)
    assert out[3].followup is follow[2] and out[3].volume_change_ml is None
    assert isinstance(out[2], FindingChange) and out[2].distance_mm is None
