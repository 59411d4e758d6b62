"""DICOM SEG on real data: a SEG written for the chest CT reads back to the same label map
(and highdicom reads it); the dcmqi examples (binary, overlapping, label-map form, 23x38x3)
match their NRRD masks voxel for voxel; geometry is checked before export."""
import dataclasses
import os

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medviewer.core.geometry import Geometry
from medviewer.io.dicom_seg import read_seg, read_seg_segments, seg_geometry, write_seg
from medviewer.io.load import open_first

SEGS = "dcmqi_seg_examples/data/segmentations"
TABLE = {"labels": [{"value": 1, "name": "Lung", "color": [0, 200, 255]},
                    {"value": 7, "name": "Bone", "color": [240, 240, 200]},
                    {"value": 9, "name": "Unused", "color": [10, 10, 10]}]}


@pytest.fixture(scope="module")
def chest(chest_ct_dir):
    """The chest CT and a real mask: lungs (-1000..-400 HU inside the body) and bone > 300 HU
    on slices 40..69 (label 7, so values are not 1..n)."""
    from scipy import ndimage

    vol = open_first([chest_ct_dir])
    a = vol.array
    body = ndimage.binary_fill_holes(a > -500, structure=np.ones((1, 3, 3), bool))
    body = ndimage.binary_erosion(body, structure=np.ones((1, 5, 5), bool))
    labels = np.zeros(a.shape, np.uint8)
    labels[(a >= -1000) & (a <= -400) & body] = 1
    bone = a > 300
    bone[:40] = False
    bone[70:] = False
    labels[bone] = 7
    return vol, labels


@pytest.fixture(scope="module")
def chest_seg(chest, tmp_path_factory):
    vol, labels = chest
    path = tmp_path_factory.mktemp("seg") / "chest_seg.dcm"
    write_seg(labels, TABLE, vol, path, series_description="Lungs and bone")
    return path


def test_chest_ct_seg_reads_back_to_the_same_label_map(chest, chest_seg):
    vol, labels = chest
    assert np.count_nonzero(labels == 1) > 100_000 and np.count_nonzero(labels == 7) > 10_000
    assert sorted(os.listdir(chest_seg.parent)) == ["chest_seg.dcm"]
    back, table, warnings = read_seg(chest_seg, vol.geometry, vol.source_paths)
    assert warnings == [] and back.shape == vol.shape
    assert np.array_equal(back, labels)
    assert [(e["value"], e["name"]) for e in table["labels"]] == [(1, "Lung"), (7, "Bone")]
    for entry, rgb in zip(table["labels"], ([0, 200, 255], [240, 240, 200])):
        assert np.abs(np.array(entry["color"]) - rgb).max() <= 1  # via CIELab
    # placed by position only, and by referenced source image only: the same
    assert np.array_equal(read_seg(chest_seg, vol.geometry)[0], labels)
    assert np.array_equal(read_seg(chest_seg, source_paths=vol.source_paths)[0], labels)


def test_chest_ct_seg_is_a_valid_binary_seg_for_highdicom(chest, chest_seg):
    vol, labels = chest
    src = pydicom.dcmread(vol.source_paths[0], stop_before_pixels=True)
    seg = hd.seg.segread(chest_seg)  # pydicom + highdicom parse and validate it
    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    assert seg.SeriesDescription == "Lungs and bone" and seg.Manufacturer == "MedViewer"
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    assert seg.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Lung", "Bone"]
    assert [s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning
            for s in seg.SegmentSequence] == ["Tissue", "Tissue"]
    assert all("RecommendedDisplayCIELabValue" in s for s in seg.SegmentSequence)
    # highdicom's own decoding, per source instance, agrees slice by slice
    uids = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
            for p in vol.source_paths]
    pix = seg.get_pixels_by_source_instance(uids,
                                            combine_segments=True, relabel=False,
                                            ignore_spatial_locations=True)
    expected = np.where(labels == 7, 2, labels)  # segment numbers 1..n
    assert np.array_equal(pix, expected)


def test_write_seg_checks_geometry_first(chest, tmp_path, shared_data):
    vol, labels = chest
    out = tmp_path / "x.dcm"
    with pytest.raises(ValueError, match="does not match the image"):
        write_seg(labels[:50], TABLE, vol, out)
    with pytest.raises(ValueError, match="empty"):
        write_seg(np.zeros_like(labels), TABLE, vol, out)
    moved = Geometry(shape=vol.geometry.shape, spacing=vol.geometry.spacing,
                     origin=tuple(np.add(vol.geometry.origin, (0, 0, 1.25))),
                     direction=vol.geometry.direction)
    with pytest.raises(ValueError, match="no longer matches the DICOM series"):
        write_seg(labels, TABLE, dataclasses.replace(vol, geometry=moved), out)
    nifti = open_first([shared_data / "totalseg/tests/reference_files/example_ct_sm.nii.gz"])
    with pytest.raises(ValueError, match="DICOM"):
        write_seg(np.ones(nifti.shape, np.uint8), None, nifti, out)
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def ct3(shared_data):
    return open_first([shared_data / SEGS / "ct-3slice"])


def _nrrd(shared_data, name):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / SEGS / name)))


def test_dcmqi_binary_liver_matches_its_nrrd(shared_data, ct3):
    """liver.dcm (1 segment, references ct-3slice) == liver_seg.nrrd (values 0/1)."""
    ref = _nrrd(shared_data, "liver_seg.nrrd")
    labels, table, warnings = read_seg(shared_data / SEGS / "liver.dcm", ct3.geometry,
                                       ct3.source_paths)
    assert warnings == [] and table["labels"][0]["name"] == "Liver"
    assert np.array_equal(labels, ref) and labels.sum() == 107098
    # on the SEG's own grid (no image given): the NRRD's grid and voxels
    own = seg_geometry(shared_data / SEGS / "liver.dcm")
    nrrd = sitk.ReadImage(str(shared_data / SEGS / "liver_seg.nrrd"))
    np.testing.assert_allclose(own.origin, nrrd.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(own.direction, nrrd.GetDirection(), atol=1e-6)
    assert np.array_equal(read_seg(shared_data / SEGS / "liver.dcm")[0], ref)


def test_dcmqi_overlapping_segments(shared_data, ct3):
    """partial_overlaps.dcm: 5 overlapping blobs on ct-3slice. None of them is one of the
    NRRDs (heart_seg/spine_seg are dcmqi inputs without a SEG here): compare each segment's
    mask with highdicom's own decoding instead, and the label map with 'later wins'."""
    path = shared_data / SEGS / "partial_overlaps.dcm"
    masks = read_seg_segments(path, ct3.geometry, ct3.source_paths)
    assert sorted(masks) == [1, 2, 3, 4, 5]
    hd_vol = hd.seg.segread(path).get_volume(combine_segments=False)
    # highdicom's volume runs head to foot (slice axis -z); ours foot to head
    for n in masks:
        assert np.array_equal(masks[n], hd_vol.array[::-1, :, :, n - 1] > 0), n
    assert np.count_nonzero(masks[1] & masks[2]) > 0
    labels, table, warnings = read_seg(path, ct3.geometry, ct3.source_paths)
    expected = np.zeros(ct3.shape, np.uint8)
    for n in sorted(masks):
        expected[masks[n]] = n
    assert np.array_equal(labels, expected)
    assert [e["name"] for e in table["labels"]] == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE",
                                                    "DARK_BLUE"]
    assert len(warnings) == 1 and "overlap" in warnings[0] and "later segment wins" in warnings[0]
    for name in ("heart_seg.nrrd", "spine_seg.nrrd", "liver_seg.nrrd"):
        ref = _nrrd(shared_data, name) > 0
        assert not any(np.array_equal(m, ref) for m in masks.values())


def test_dcmqi_23x38x3_seg_matches_its_nrrd_on_both_image_forms(shared_data):
    ref = _nrrd(shared_data, "23x38x3/nrrd/label.nrrd")
    seg = shared_data / SEGS / "23x38x3/seg/label.seg"
    for folder in ("image", "multiframe"):  # classic slices, and one enhanced multi-frame file
        img = open_first([shared_data / SEGS / "23x38x3" / folder])
        labels, table, warnings = read_seg(seg, img.geometry, img.source_paths)
        assert warnings == [] and labels.shape == (3, 38, 23)
        assert np.array_equal(labels, ref), folder
    assert table["labels"][0]["name"] == "Liver"


@pytest.mark.parametrize("name", ["sparse-labelmap-noppv.dcm", "sparse-labelmap-ppv5.dcm"])
def test_dcmqi_sparse_labelmap_seg(shared_data, name):
    """LABELMAP SEG (SimpleITK cannot read it) with 2 frames at slices 0 and 2 of a 3-slice
    38x24 grid (a series not in the data: one column wider than 23x38x3). Its liver is the
    liver of 23x38x3/nrrd/label.nrrd's middle slice without that file's 4 corner markers."""
    path = shared_data / SEGS / name
    labels, table, warnings = read_seg(path)
    assert warnings == [] and labels.shape == (3, 38, 24)
    assert [(e["value"], e["name"]) for e in table["labels"]] == [(1, "Liver")]
    assert not labels[1].any() and np.array_equal(labels[0], labels[2])
    liver = _nrrd(shared_data, "23x38x3/nrrd/label.nrrd")[1].copy()
    liver[[0, 0, -1, -1], [0, -1, 0, -1]] = 0
    assert np.array_equal(labels[0, :, :23], liver)
    # onto the 23-column image of the same place: the 24th column is dropped, with a warning
    img = open_first([shared_data / SEGS / "23x38x3/image"])
    on_img, _, warnings = read_seg(path, img.geometry)
    assert np.array_equal(on_img, labels[:, :, :23]) and "dropped" in warnings[0]
    assert np.array_equal(read_seg_segments(path, img.geometry)[1], on_img == 1)


def test_read_seg_refuses_other_objects_and_other_grids(shared_data, ct3):
    with pytest.raises(ValueError, match="not a DICOM Segmentation"):
        read_seg(ct3.source_paths[0])
    img = open_first([shared_data / SEGS / "23x38x3/image"])
    with pytest.raises(ValueError, match="pixel spacing"):
        read_seg(shared_data / SEGS / "liver.dcm", img.geometry)


def test_referenced_series_of_the_dcmqi_segs(shared_data, ct3):
    from medviewer.io.dicom_seg import seg_referenced_series

    ct_series = pydicom.dcmread(ct3.source_paths[0], stop_before_pixels=True).SeriesInstanceUID
    for name in ("liver.dcm", "partial_overlaps.dcm"):
        assert seg_referenced_series(shared_data / SEGS / name) == [ct_series]
    image = pydicom.dcmread(next((shared_data / SEGS / "23x38x3/image").iterdir()),
                            stop_before_pixels=True).SeriesInstanceUID
    assert seg_referenced_series(shared_data / SEGS / "23x38x3/seg/label.seg") == [image]
    # the sparse label-map SEGs reference a series that is not in the data
    assert image not in seg_referenced_series(shared_data / SEGS / "sparse-labelmap-noppv.dcm")
