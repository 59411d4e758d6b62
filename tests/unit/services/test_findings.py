"""Findings on real data: TotalSegmentator's reference CT and labels (volumes, diameters
against brute force, HU statistics), a synthetic ellipse drawn into the chest CT's geometry,
connectivity, CSV/JSON round trips and the DICOM SR read back with highdicom."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medviewer.core.findings import find_findings, slice_diameters
from medviewer.core.geometry import Geometry
from medviewer.io.load import open_first
from medviewer.services.findings import (case_findings, export_findings, export_findings_sr,
                                         read_findings, read_findings_rows)

TS = "totalseg/tests/reference_files"


@pytest.fixture(scope="module")
def totalseg(shared_data):
    ct = open_first([shared_data / TS / "example_ct_sm.nii.gz"])
    seg = open_first([shared_data / TS / "example_seg.nii.gz"])
    labels = np.asarray(seg.array).astype(np.uint8)
    assert labels.shape == ct.shape and labels.max() > 10
    return ct, labels


@pytest.fixture(scope="module")
def ts_findings(totalseg):
    ct, labels = totalseg
    return case_findings(ct, labels)


def _mm(geometry, z, ys, xs):
    return geometry.index_zyx_to_lps(np.column_stack([np.full(len(ys), z), ys, xs]).astype(float))


def _brute_long(geometry, z, mask2d):
    ys, xs = np.nonzero(mask2d)
    p = _mm(geometry, z, ys, xs)
    d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
    return float(d.max())


def _brute_short(geometry, z, mask2d, u_lps, tol_mm):
    """Longest distance between two voxels of the slice whose line is perpendicular to the
    long axis: same position along it within ``tol_mm``."""
    ys, xs = np.nonzero(mask2d)
    p = _mm(geometry, z, ys, xs)
    t = p @ u_lps
    d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
    same = np.abs(t[:, None] - t[None]) <= tol_mm
    return float(d[same].max())


def test_each_component_volume_is_voxel_count_times_voxel_volume(totalseg, ts_findings):
    ct, labels = totalseg
    voxel_ml = float(np.prod(ct.geometry.spacing)) / 1000.0
    structure = np.ones((3, 3, 3), bool)
    by_label = {}
    for f in ts_findings:
        by_label.setdefault(f.label, []).append(f)
        assert f.volume_ml == pytest.approx(f.n_voxels * voxel_ml, rel=1e-12)
        assert f.connectivity == 26 and f.units == "HU"
    assert sorted(by_label) == [int(v) for v in np.unique(labels) if v > 0]
    for value, fs in by_label.items():
        comp, n = ndimage.label(labels == value, structure=structure)
        sizes = sorted(np.bincount(comp.ravel())[1:].tolist(), reverse=True)
        assert [f.n_voxels for f in fs] == sizes  # largest first, one finding a component
        assert [f.component for f in fs] == list(range(1, n + 1))
    assert [f.number for f in ts_findings] == list(range(1, len(ts_findings) + 1))


def test_boxes_slices_and_hu_statistics_match_numpy_on_the_mask(totalseg, ts_findings):
    ct, labels = totalseg
    img = np.asarray(ct.array, dtype=np.float64)
    for f in ts_findings[:12]:
        z0, y0, x0 = f.bbox_min_zyx
        z1, y1, x1 = f.bbox_max_zyx
        comp, _ = ndimage.label(labels == f.label, structure=np.ones((3, 3, 3), bool))
        # the component is the one of this size inside the finding's box
        ids, counts = np.unique(comp[z0:z1 + 1, y0:y1 + 1, x0:x1 + 1], return_counts=True)
        cid = [i for i, c in zip(ids, counts) if i and c == f.n_voxels][0]
        mask = comp == cid
        zz, yy, xx = np.nonzero(mask)
        assert (zz.min(), yy.min(), xx.min()) == (z0, y0, x0)
        assert (zz.max(), yy.max(), xx.max()) == (z1, y1, x1)
        assert f.slices == (z0, z1)
        assert f.mean == pytest.approx(img[mask].mean(), rel=1e-9, abs=1e-9)
        assert f.sd == pytest.approx(img[mask].std(), rel=1e-9, abs=1e-9)
        lps = ct.geometry.index_zyx_to_lps(np.array([[z0, y0, x0], [z1, y1, x1]], float))
        assert np.allclose(np.sort(lps, axis=0)[0], f.bbox_min_lps)
        assert np.allclose(np.sort(lps, axis=0)[1], f.bbox_max_lps)


def test_diameters_match_brute_force_on_every_slice(totalseg, ts_findings):
    ct, labels = totalseg
    g = ct.geometry
    structure = np.ones((3, 3, 3), bool)
    checked = 0
    for f in ts_findings:
        if f.n_voxels > 4000:  # brute force is quadratic: organs of moderate size
            continue
        comp, _ = ndimage.label(labels == f.label, structure=structure)
        cid = np.bincount(comp[labels == f.label])  # sizes of each component
        cid = [i for i in range(1, len(cid)) if cid[i] == f.n_voxels and
               np.any(comp[f.measure_slice] == i)][0]
        per_slice = {z: _brute_long(g, z, comp[z] == cid)
                     for z in range(f.slices[0], f.slices[1] + 1) if np.any(comp[z] == cid)}
        assert f.long_mm == pytest.approx(max(per_slice.values()), abs=1e-9)
        assert per_slice[f.measure_slice] == pytest.approx(f.long_mm, abs=1e-9)
        a, b = np.asarray(f.long_axis.a_lps), np.asarray(f.long_axis.b_lps)
        assert np.linalg.norm(a - b) == pytest.approx(f.long_mm, abs=1e-6)
        u = (b - a) / max(np.linalg.norm(b - a), 1e-12)
        sa, sb = np.asarray(f.short_axis.a_lps), np.asarray(f.short_axis.b_lps)
        if f.short_mm > 0:
            assert abs(np.dot((sb - sa) / f.short_mm, u)) < 1e-6  # perpendicular
        brute = _brute_short(g, f.measure_slice, comp[f.measure_slice] == cid, u, g.spacing[0] / 2)
        assert f.short_mm == pytest.approx(brute, abs=g.spacing[0])
        checked += 1
    assert checked >= 10


def test_ellipse_of_known_size_in_the_chest_ct_geometry(chest_ct_dir):
    """A 40 x 20 mm ellipse turned 30 degrees, drawn on 3 slices of the chest CT's grid."""
    import pydicom

    first = pydicom.dcmread(sorted(chest_ct_dir.glob("*.dcm"))[0], stop_before_pixels=True)
    ps = [float(v) for v in first.PixelSpacing]
    iop = np.asarray(first.ImageOrientationPatient, float)
    g = Geometry(shape=(100, 512, 512), spacing=(ps[1], ps[0], 2.5),
                 origin=tuple(float(v) for v in first.ImagePositionPatient),
                 direction=tuple(np.column_stack([iop[:3], iop[3:], np.cross(iop[:3], iop[3:])]).ravel()))
    yy, xx = np.mgrid[0:512, 0:512]
    cy, cx = 240.3, 260.7
    dy, dx = (yy - cy) * ps[0], (xx - cx) * ps[1]
    th = np.radians(30)
    u = dx * np.cos(th) + dy * np.sin(th)
    v = -dx * np.sin(th) + dy * np.cos(th)
    disk = (u / 20.0) ** 2 + (v / 10.0) ** 2 <= 1
    labels = np.zeros(g.shape, np.uint8)
    labels[50:53][:, disk] = 3
    (f,) = find_findings(labels, g, names={3: "Nodule"})
    px = max(ps)
    assert f.name == "Nodule" and f.slices == (50, 52)
    assert 40.0 - 2 * px <= f.long_mm <= 40.0
    assert 20.0 - 2 * px <= f.short_mm <= 20.0
    assert f.volume_ml == pytest.approx(3 * disk.sum() * ps[0] * ps[1] * 2.5 / 1000.0)
    assert f.volume_ml == pytest.approx(np.pi * 20 * 10 * 7.5 / 1000.0, rel=0.03)
    a, b = np.asarray(f.long_axis.a_zyx), np.asarray(f.long_axis.b_zyx)
    ang = np.degrees(np.arctan2((b[1] - a[1]) * ps[0], (b[2] - a[2]) * ps[1])) % 180
    assert abs(ang - 30) < 3
    # one slice alone, measured by slice_diameters: the same numbers
    long_, short = slice_diameters(disk, g, 51)
    assert long_.length_mm == pytest.approx(f.long_mm) and short.length_mm == pytest.approx(f.short_mm)


def test_connectivity_6_splits_what_26_joins_and_anisotropic_spacing_counts():
    g = Geometry(shape=(3, 8, 8), spacing=(0.5, 2.0, 4.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1, 2, 2] = labels[1, 3, 3] = 1  # diagonal neighbours
    assert len(find_findings(labels, g, connectivity=26)) == 1
    assert len(find_findings(labels, g, connectivity=6)) == 2
    labels[1, 2, 2:7] = 1  # a row of 5 voxels along x (0.5 mm) then one diagonal
    (f,) = find_findings(labels, g)
    assert f.long_mm == pytest.approx(np.hypot(3 * 0.5, 1 * 2.0))  # (2, 6) to (3, 3)
    assert f.volume_ml == pytest.approx(6 * 0.5 * 2 * 4 / 1000)
    with pytest.raises(ValueError, match="connectivity"):
        find_findings(labels, g, connectivity=8)
    with pytest.raises(ValueError, match="shape"):
        find_findings(labels[:2], g)


def test_measuring_only_the_edited_labels_gives_the_full_measurement(totalseg, ts_findings):
    ct, labels = totalseg
    edited = labels.copy()
    edited[edited == 4] = 0  # a label removed
    liver = np.argwhere(edited == 5)
    edited[tuple(liver[: len(liver) // 2].T)] = 0  # half the liver erased
    edited[2:5, 5:9, 5:9] = 1  # a new piece of label 1 in a corner
    full = case_findings(ct, edited)
    update = case_findings(ct, edited, update=(ts_findings, {1, 4, 5}))
    assert update == full
    assert len({f.label for f in update}) == len({f.label for f in ts_findings}) - 1


def test_csv_and_json_round_trip(totalseg, ts_findings, tmp_path):
    ct, _ = totalseg
    js = export_findings(ts_findings, tmp_path / "f.json", ct, key_folder=tmp_path)
    back = read_findings(js)
    assert back == ts_findings
    doc = json.loads(js.read_text())
    assert doc["subject"]["anonymised"] is True and doc["image"]["units"] == "HU"
    rows = read_findings_rows(export_findings(ts_findings, tmp_path / "f.csv"))
    assert len(rows) == len(ts_findings)
    for row, f in zip(rows, ts_findings):
        assert int(row["label"]) == f.label and int(row["n_voxels"]) == f.n_voxels
        assert float(row["volume_ml"]) == f.volume_ml
        assert float(row["long_axis_mm"]) == f.long_mm and float(row["mean"]) == f.mean
        assert float(row["long_a_l"]) == f.long_axis.a_lps[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "f.json"]  # no temp left
    with pytest.raises(ValueError, match="csv or .json"):
        export_findings(ts_findings, tmp_path / "f.txt")


def test_sr_needs_dicom_sources(totalseg, ts_findings, tmp_path):
    ct, labels = totalseg
    with pytest.raises(ValueError, match="not loaded from DICOM"):
        export_findings_sr(ts_findings, labels, None, ct, tmp_path / "sr.dcm")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_dicom_sr_reads_back_with_the_findings(chest_ct_dir, tmp_path):
    import highdicom as hd
    import pydicom

    from medviewer.io.dicom_sr_write import read_findings_sr

    vol = open_first([chest_ct_dir])
    img = np.asarray(vol.array)
    labels = np.zeros(vol.shape, np.uint8)
    labels[45:50][img[45:50] > 300] = 2  # bone
    labels[45:50][(img[45:50] < -400) & (img[45:50] > -1000)] = 1  # lung (and air)
    table = {"labels": [{"value": 1, "name": "Lung", "color": [0, 200, 0]},
                        {"value": 2, "name": "Bone", "color": [250, 250, 250]}]}
    findings = case_findings(vol, labels, table, min_voxels=200)
    assert {f.label for f in findings} == {1, 2}
    sr_path, seg_path = export_findings_sr(findings, labels, table, vol, tmp_path / "r.dcm",
                                           key_folder=tmp_path)
    sr = pydicom.dcmread(sr_path)
    seg = hd.seg.segread(seg_path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert str(sr.PatientName) != str(pydicom.dcmread(vol.source_paths[0]).PatientName)
    evidence = {r.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
    assert seg.SOPInstanceUID in evidence
    assert {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
            for p in vol.source_paths} <= evidence
    groups = read_findings_sr(sr_path)
    assert len(groups) == len(findings)
    segments = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    uids = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in vol.source_paths]
    for g, f in zip(groups, findings):
        assert g["source_images"] == uids[f.slices[0]:f.slices[1] + 1]
        assert g["tracking_id"].startswith(f"Finding {f.number} ({f.name}")
        assert segments[g["segment_number"]] == f.name
        m = g["measurements"]
        assert m["Volume"] == (pytest.approx(f.volume_ml), "ml")
        assert m["Long axis"] == (pytest.approx(f.long_mm), "mm")
        assert m["Short axis"] == (pytest.approx(f.short_mm), "mm")
        assert m["Mean"][0] == pytest.approx(f.mean) and m["Mean"][1] == "[hnsf'U]"
        assert m["Standard Deviation"][0] == pytest.approx(f.sd)

    # one label only: a SEG of one segment (its identification shared by every frame)
    bone = [f for f in findings if f.label == 2]
    only = np.where(labels == 2, 2, 0).astype(np.uint8)
    sr1, _ = export_findings_sr(bone, only, table, vol, tmp_path / "bone.dcm", key_folder=tmp_path)
    assert [g["measurements"]["Volume"][0] for g in read_findings_sr(sr1)] == \
        pytest.approx([f.volume_ml for f in bone])


def test_oblique_real_geometry_and_uneven_slices(shared_data):
    """Direction cosines (real oblique MR, 20 degrees in all planes) and uneven slice steps."""
    mr = open_first([shared_data / "dcm_qa_toshiba_oblique/In/Galan/10006_DTI_ALL_20d"])
    g = mr.geometry
    assert not np.allclose(np.abs(g.direction_matrix), np.eye(3), atol=0.1)
    img = np.asarray(mr.array, dtype=float)
    labels = (img > np.percentile(img, 90)).astype(np.uint8)
    found = find_findings(labels, g, img, units="")
    assert found and found[0].units == ""
    f = found[0]
    comp, _ = ndimage.label(labels, structure=np.ones((3, 3, 3), bool))
    cid = np.argmax(np.bincount(comp.ravel())[1:]) + 1
    per_slice = [_brute_long(g, z, comp[z] == cid) for z in range(g.shape[0]) if np.any(comp[z] == cid)]
    assert f.long_mm == pytest.approx(max(per_slice), abs=1e-9)
    a, b = np.asarray(f.long_axis.a_lps), np.asarray(f.long_axis.b_lps)
    assert np.linalg.norm(a - b) == pytest.approx(f.long_mm, abs=1e-6)

    # uneven slices: each slice's voxels count with that slice's own step
    offs = (0.0, 1.0, 3.0, 7.0)
    gu = Geometry(shape=(4, 6, 6), spacing=(0.5, 0.5, 2.0), slice_offsets=offs)
    lab = np.zeros(gu.shape, np.uint8)
    lab[:, 2:4, 2:4] = 1
    (fu,) = find_findings(lab, gu)
    steps = np.gradient(np.asarray(offs))  # 1, 1.5, 3, 4
    assert fu.volume_ml == pytest.approx(4 * 0.25 * steps.sum() / 1000)
    assert fu.bbox_max_lps[2] - fu.bbox_min_lps[2] == pytest.approx(7.0)
