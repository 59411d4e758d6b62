"""Registration (services.registration) on real shared images: a known rigid and a known affine
transform applied to the TotalSegmentator MR and CT are recovered within 1 mm and 1 degree;
label maps follow; transforms are saved with their provenance; cancel and bad input; the MNI152
template registered to a real brain MR improves the overlap of the tissue maps."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.jobs import Cancelled, CancelToken, Reporter
from medviewer.services import registration as R
from medviewer.services.studies import load, scan

pytestmark = pytest.mark.slow  # each registration takes seconds on 2 cores


def _load(path):
    return load(scan([str(path)]).series[0])


@pytest.fixture(scope="module")
def ts(shared_data):
    return shared_data / "totalseg" / "tests" / "reference_files"


@pytest.fixture(scope="module")
def mr(ts):
    return _load(ts / "example_mr_sm.nii.gz"), _load(ts / "example_seg_mr.nii.gz")


@pytest.fixture(scope="module")
def ct(ts):
    return _load(ts / "example_ct_sm.nii.gz")  # 30 slices of 3 mm


@pytest.fixture(scope="module")
def ct_trunk(ts):
    return _load(ts / "example_ct.nii.gz")  # the whole example: 112 slices of 3 mm


def _centre(vol):
    img = R._image(vol)
    return img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in img.GetSize()])


def _moved(vol, known):
    """``vol``'s content moved by ``known`` (moving(x) = fixed(known(x))), on its own grid."""
    return R.resample_volume(vol, vol.geometry, known, description="moved")


def _error_mm(vol, known, found):
    """Displacements (mm) left at the body's voxels: known o found should be the identity."""
    both = sitk.CompositeTransform([known, found])  # found first, then known
    body = (vol.array > -500) if vol.modality == "CT" else (vol.array > np.percentile(vol.array, 60))
    return R.displacement_mm(both, sitk.Transform(3, sitk.sitkIdentity), vol.geometry, 4, body)


def _rotation_deg(m) -> float:
    m = np.asarray(m, float).reshape(3, 3)
    return math.degrees(math.acos(float(np.clip((np.trace(m) - 1) / 2, -1, 1))))


def test_a_known_rigid_transform_of_the_mr_is_recovered_within_1mm_and_1_degree(mr):
    vol, _ = mr
    known = sitk.Euler3DTransform(_centre(vol), math.radians(6), math.radians(-4),
                                  math.radians(8), (7.0, -5.0, 4.0))
    assert np.percentile(_error_mm(vol, known, sitk.Euler3DTransform()), 95) > 8  # far apart
    res = R.register(vol, _moved(vol, known), "rigid")
    err = _error_mm(vol, known, res.transform)
    assert np.percentile(err, 95) <= 1.0 and err.mean() <= 0.5
    found = res.transform.GetNthTransform(0)
    left = np.asarray(known.GetMatrix()).reshape(3, 3) @ np.asarray(found.GetMatrix()).reshape(3, 3)
    assert _rotation_deg(left) <= 1.0
    assert res.kind == "rigid" and res.iterations > 0 and res.metric_value < 0


@pytest.mark.parametrize("which", ["mr", "ct"])
def test_known_rigid_and_affine_transforms_are_recovered_within_1mm(which, mr, ct_trunk):
    vol = mr[0] if which == "mr" else ct_trunk
    known = sitk.AffineTransform(3)
    known.SetCenter(_centre(vol))
    known.SetMatrix((1.05, 0.04, 0.0, -0.03, 0.96, 0.03, 0.02, 0.0, 1.03))
    known.SetTranslation((5.0, -6.0, 3.0))
    res = R.register(vol, _moved(vol, known), "affine")
    err = _error_mm(vol, known, res.transform)
    print(f"\naffine {which}: p95 {np.percentile(err, 95):.2f} mm, mean {err.mean():.2f} mm, "
          f"{res.seconds:.1f} s")
    assert np.percentile(err, 95) <= 1.0 and err.mean() <= 0.6
    rigid = sitk.Euler3DTransform(_centre(vol), math.radians(-5), math.radians(3),
                                  math.radians(-7), (-6.0, 4.0, 5.0))
    res = R.register(vol, _moved(vol, rigid), "rigid")
    err = _error_mm(vol, rigid, res.transform)
    assert np.percentile(err, 95) <= 1.0
    left = (np.asarray(rigid.GetMatrix()).reshape(3, 3)
            @ np.asarray(res.transform.GetNthTransform(0).GetMatrix()).reshape(3, 3))
    assert _rotation_deg(left) <= 1.0


def test_labels_follow_the_registration_and_keep_their_values(mr):
    vol, seg = mr
    known = sitk.Euler3DTransform(_centre(vol), 0.0, 0.0, math.radians(10), (6.0, 4.0, 0.0))
    moving = _moved(vol, known)
    moving_seg = R.resample_labels(seg.array, seg.geometry, vol.geometry, known)
    res = R.register(vol, moving, "rigid")
    back = R.resample_labels(moving_seg, vol.geometry, vol.geometry, res.transform)
    assert back.dtype == seg.array.dtype
    assert set(np.unique(back)) <= set(np.unique(seg.array))  # nearest neighbour: no blends
    for value in (v for v in np.unique(seg.array) if v and (seg.array == v).sum() > 2000):
        a, b = seg.array == value, back == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.85, value  # large organs overlap
    with pytest.raises(R.RegistrationError, match="grid"):
        R.resample_labels(seg.array[:5], seg.geometry, vol.geometry, res.transform)


def test_the_transform_is_saved_with_its_provenance_and_reads_back(mr, tmp_path):
    vol, _ = mr
    known = sitk.Euler3DTransform(_centre(vol), 0.0, math.radians(5), 0.0, (3.0, 0.0, -2.0))
    res = R.register(vol, _moved(vol, known), "rigid", levels=2)
    path = R.save_transform(res, tmp_path / "moving_to_fixed.tfm")
    again = R.load_transform(path)
    for p in ((0.0, 0.0, 0.0), (40.0, -30.0, 10.0)):
        np.testing.assert_allclose(again.TransformPoint(p), res.transform.TransformPoint(p),
                                   atol=1e-4)
    prov = json.loads((tmp_path / "moving_to_fixed.tfm.json").read_text())
    assert prov["kind"] == "rigid" and prov["levels"] == 2 and prov["seconds"] > 0
    assert prov["fixed"]["shape_zyx"] == list(vol.shape) and "patient" not in json.dumps(prov).lower()
    with pytest.raises(R.RegistrationError, match=".tfm"):
        R.save_transform(res, tmp_path / "t.nii.gz")
    with pytest.raises(R.RegistrationError, match="no such"):
        R.load_transform(tmp_path / "missing.tfm")


def test_cancel_ends_the_registration(ct):
    token, seen = CancelToken(), []

    def progress(p):
        seen.append(p)
        if "iteration" in p.message:
            token.cancel()

    known = sitk.Euler3DTransform(_centre(ct), 0.1, 0.0, 0.0, (5.0, 0.0, 0.0))
    with pytest.raises(Cancelled):
        R.register(ct, _moved(ct, known), "deformable", Reporter(progress, token))
    assert any("Rigid" in p.message for p in seen)
    assert not any("Deformable" in p.message for p in seen)  # stopped in the first stage


def test_bad_input_is_refused_in_one_sentence(ct):
    with pytest.raises(R.RegistrationError, match="kind"):
        R.register(ct, ct, "elastic")
    thin = Volume(np.zeros((1, 64, 64), np.int16), Geometry(shape=(1, 64, 64)))
    with pytest.raises(R.RegistrationError, match="too thin"):
        R.register(ct, thin, "rigid")


def test_the_mni_template_registered_to_a_brain_mr_overlaps_its_tissue_better(shared_data):
    """MNI152 2009a (moving) onto pyradiomics' brain1 MR (fixed, 6.5 mm slices). The
    template's grey- and white-matter maps (p > 0.5), taken onto the subject, against the
    subject's own two tissue classes inside that brain (2-class Otsu of its intensities; the
    class to tissue pairing that fits best, so the MR weighting does not matter): the mean
    Dice before (as the files place them) and after a rigid and an affine registration."""
    mni_dir = shared_data / "nilearn_mni152"
    subject = _load(shared_data / "pyradiomics_data" / "data" / "brain1_image.nrrd")
    template = _load(mni_dir / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    maps = [_load(mni_dir / f"mni_icbm152_{t}_tal_nlin_sym_09a_converted.nii.gz")
            for t in ("gm", "wm")]

    def overlap(transform) -> float:
        gm, wm = (R.resample_volume(m, subject.geometry, transform, fill=0).array
                  > 0.5 * float(m.array.max()) for m in maps)
        brain = gm | wm
        values = subject.array[brain].astype(np.float32)
        cut = _otsu(values)
        bright = brain & (subject.array > cut)
        dark = brain & ~bright

        def dice(a, b):
            return 2 * (a & b).sum() / max(1, a.sum() + b.sum())

        return max((dice(wm, bright) + dice(gm, dark)) / 2, (dice(wm, dark) + dice(gm, bright)) / 2)

    before = overlap(sitk.Transform(3, sitk.sitkIdentity))
    rigid = R.register(subject, template, "rigid")
    affine = R.register(subject, template, "affine")
    after_rigid, after_affine = overlap(rigid.transform), overlap(affine.transform)
    print(f"\nMNI152 -> brain1 tissue overlap: none {before:.3f}, rigid {after_rigid:.3f} "
          f"({rigid.seconds:.1f} s), affine {after_affine:.3f} ({affine.seconds:.1f} s)")
    assert after_rigid >= before + 0.05 and after_affine >= before + 0.05


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of ``values`` (256 bins)."""
    hist, edges = np.histogram(values, 256)
    centres = (edges[:-1] + edges[1:]) / 2
    w = np.cumsum(hist).astype(float)
    m = np.cumsum(hist * centres)
    total_w, total_m = w[-1], m[-1]
    w2 = total_w - w
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_m * w - m * total_w) ** 2 / (w * w2)
    return float(centres[int(np.nanargmax(between[:-1]))])


def test_the_command_line_writes_the_registered_series_labels_and_transform(mr, ts, tmp_path,
                                                                            capsys):
    from medviewer.cli import main

    vol, seg = mr
    known = sitk.Euler3DTransform(_centre(vol), 0.0, 0.0, math.radians(-8), (-5.0, 6.0, 0.0))
    moving = R.write_series(_moved(vol, known), tmp_path / "moving.nii.gz")
    moved_seg = R.resample_labels(seg.array, seg.geometry, vol.geometry, known)
    seg_path = R.write_labels(moved_seg, vol.geometry, tmp_path / "moving_seg.nii.gz")
    out, lab, tfm = tmp_path / "out.nii.gz", tmp_path / "lab.nii.gz", tmp_path / "m2f.tfm"
    rc = main(["register", str(ts / "example_mr_sm.nii.gz"), str(moving), str(out),
               "--transform", str(tfm), "--labels", str(seg_path), "--labels-out", str(lab),
               "--json"])
    assert rc == 0
    prov = json.loads(capsys.readouterr().out)
    assert prov["kind"] == "rigid" and prov["out"] == str(out)
    registered, carried = _load(out), _load(lab)
    assert registered.shape == vol.shape
    np.testing.assert_allclose(registered.geometry.origin, vol.geometry.origin, atol=1e-3)
    liver = int(np.bincount(seg.array.ravel())[1:].argmax()) + 1  # the largest label
    a, b = seg.array == liver, carried.array == liver
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.9
    assert R.load_transform(tfm).TransformPoint((0.0, 0.0, 0.0)) is not None
    assert main(["register", str(tmp_path / "nothing"), str(moving), str(out)]) == 2
    assert main(["register", str(moving), str(moving), str(tmp_path / "x.png")]) == 2
    assert "OUT must end" in capsys.readouterr().err


def test_deformable_refines_an_affine_and_follows_a_local_warp(mr):
    """A known affine plus a smooth local displacement (a Gaussian bump of 4 mm) of the MR:
    the deformable registration (B-spline after affine) ends closer to the truth than the
    affine alone (which cannot follow the bump), within 1 mm at 95 % of the body's voxels."""
    vol, _ = mr
    c = np.asarray(_centre(vol))
    affine = sitk.AffineTransform(3)
    affine.SetCenter(tuple(c))
    affine.SetMatrix((1.03, 0.02, 0.0, -0.02, 0.98, 0.0, 0.0, 0.0, 1.0))
    affine.SetTranslation((3.0, -2.0, 0.0))
    img = R._image(vol)
    field = np.zeros(tuple(reversed(img.GetSize())) + (3,), np.float64)
    zz, yy, xx = np.indices(field.shape[:3])
    pts = np.stack([xx, yy, zz], -1) * np.asarray(img.GetSpacing()) + np.asarray(img.GetOrigin())
    bump = np.exp(-np.sum((pts - (c + (30.0, 0.0, 0.0))) ** 2, -1) / (2 * 35.0 ** 2))
    field[..., 0] = 4.0 * bump  # up to 4 mm along x, smooth over ~35 mm
    disp = sitk.GetImageFromArray(field, isVector=True)
    disp.CopyInformation(img)
    warp = sitk.DisplacementFieldTransform(sitk.Cast(disp, sitk.sitkVectorFloat64))
    known = sitk.CompositeTransform([affine, warp])  # the warp first, then the affine
    moving = _moved(vol, known)
    errs = {}
    for kind in ("affine", "deformable"):
        res = R.register(vol, moving, kind)
        errs[kind] = _error_mm(vol, known, res.transform)
    print(f"\nwarp: affine p95 {np.percentile(errs['affine'], 95):.2f} mm, deformable p95 "
          f"{np.percentile(errs['deformable'], 95):.2f} mm")
    assert np.percentile(errs["deformable"], 95) < np.percentile(errs["affine"], 95)
    assert np.percentile(errs["deformable"], 95) <= 1.0
