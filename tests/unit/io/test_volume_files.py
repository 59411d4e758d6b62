"""Volume files (NIfTI, NRRD, MetaImage, MGH/MGZ) read with the right geometry and voxels, and
NIfTI written back; references are SimpleITK and nibabel reading the same real files."""
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.io.load import LoadError, load_series
from medviewer.io.discover import scan_paths
from medviewer.io.nifti_writer import WriteError, write_nifti
from medviewer.io.volume_files import is_volume_file, looks_like_hu, read_volume_file

REAL_FILES = [
    "totalseg/tests/reference_files/example_ct_sm.nii.gz",
    "totalseg/tests/reference_files/example_mr_sm.nii.gz",
    "nilearn_mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "monai_testing_data/tests/testing_data/anatomical.nii",
    "pyradiomics_data/data/brain1_image.nrrd",
    "pyradiomics_data/data/breast1_image.nrrd",
    "pyradiomics_data/data/prostate_phantom_subvolume.nrrd",
    "dcmqi_seg_examples/data/segmentations/liver_seg.nrrd",
]
CT_NII = "totalseg/tests/reference_files/example_ct_sm.nii.gz"


def _assert_same_as_sitk(vol: Volume, img: sitk.Image):
    g = vol.geometry
    np.testing.assert_allclose(g.origin, img.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(g.spacing, img.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(g.direction, img.GetDirection(), atol=1e-6)
    size = img.GetSize()
    for idx in [(0, 0, 0), (size[0] - 1, 0, 0), (0, size[1] - 1, size[2] - 1),
                (size[0] // 2, size[1] // 3, size[2] // 2), tuple(s - 1 for s in size)]:
        np.testing.assert_allclose(g.index_to_lps(idx), img.TransformIndexToPhysicalPoint(idx),
                                   atol=1e-5)
    ref = sitk.GetArrayFromImage(img)
    assert vol.array.dtype == ref.dtype
    np.testing.assert_array_equal(vol.array, ref)


@pytest.mark.parametrize("rel", REAL_FILES)
def test_real_files_match_simpleitk(shared_data, rel):
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"{rel} is not in this copy of the shared data")
    vol = read_volume_file(path)
    _assert_same_as_sitk(vol, sitk.ReadImage(str(path)))
    assert vol.source_paths == [str(path)] and not vol.array.flags.writeable


def test_nifti_voxels_and_patient_positions_match_nibabel(shared_data):
    img = nib.load(shared_data / CT_NII)
    vol = read_volume_file(shared_data / CT_NII)
    data = np.asanyarray(img.dataobj)
    assert vol.array.dtype == np.int16  # stays int16, not widened
    for ijk in [(0, 0, 0), (10, 20, 5), (121, 100, 29)]:
        assert vol.array[ijk[::-1]] == data[ijk]
        ras = nib.affines.apply_affine(img.affine, ijk)
        np.testing.assert_allclose(vol.geometry.index_to_lps(ijk), ras * [-1, -1, 1], atol=1e-4)


def test_modality_guess(shared_data):
    ct = read_volume_file(shared_data / CT_NII)
    assert (ct.modality, ct.units) == ("CT", "HU") and ct.meta["modality_guessed"]
    for rel in ["totalseg/tests/reference_files/example_mr_sm.nii.gz",
                "pyradiomics_data/data/brain1_image.nrrd",
                "nilearn_mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"]:
        assert read_volume_file(shared_data / rel).modality == ""
    # an MR phase-like spread of values (uniform, no air peak) is not HU
    phase = np.linspace(-4096, 4095, 30 * 40 * 50).astype(np.int16).reshape(30, 40, 50)
    assert not looks_like_hu(phase)


def test_mha_and_mhd_written_by_simpleitk_read_back(shared_data, tmp_path):
    img = sitk.ReadImage(str(shared_data / "pyradiomics_data/data/brain1_image.nrrd"))
    for name in ("brain.mha", "brain.mhd"):
        sitk.WriteImage(img, str(tmp_path / name), True)
        vol = read_volume_file(tmp_path / name)
        _assert_same_as_sitk(vol, img)
        assert vol.meta["format"] == "MetaImage"


def test_metaimage_modality_field_is_honoured(shared_data, tmp_path):
    img = sitk.ReadImage(str(shared_data / CT_NII))
    sitk.WriteImage(img, str(tmp_path / "ct.mha"))
    text = (tmp_path / "ct.mha").read_bytes()
    head, sep, rest = text.partition(b"ElementDataFile")
    (tmp_path / "ct2.mha").write_bytes(head + b"Modality = MET_MOD_MR\n" + sep + rest)
    vol = read_volume_file(tmp_path / "ct2.mha")
    assert vol.modality == "MR" and "modality_guessed" not in vol.meta


def test_mgz_round_trips_geometry_through_nibabel(shared_data, tmp_path):
    nii = nib.load(shared_data / CT_NII)
    data = np.asanyarray(nii.dataobj)
    nib.save(nib.MGHImage(data, nii.affine), tmp_path / "ct.mgz")
    vol = read_volume_file(tmp_path / "ct.mgz")
    ref = read_volume_file(shared_data / CT_NII)
    assert vol.array.dtype == np.int16 and vol.meta["format"] == "MGH"
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.geometry.affine_lps(), ref.geometry.affine_lps(), atol=1e-4)
    # and an oblique one: the MNI template with a rotated affine, saved as .mgh
    t1 = nib.load(shared_data / "nilearn_mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    rot = nib.affines.from_matvec(nib.eulerangles.euler2mat(0.3, -0.2, 0.1), [5, -7, 11])
    aff = rot @ t1.affine
    nib.save(nib.MGHImage(np.asanyarray(t1.dataobj), aff), tmp_path / "t1.mgh")
    vol = read_volume_file(tmp_path / "t1.mgh")
    np.testing.assert_allclose(vol.geometry.affine_ras(), aff, atol=1e-4)
    ijk = (40, 150, 77)
    assert vol.array[ijk[::-1]] == np.asanyarray(t1.dataobj)[ijk]


def test_4d_nifti_keeps_the_first_volume(shared_data):
    path = shared_data / "dcm_qa_enh/Ref/Siemens_REST1_w_SMS_PF7-8_6.nii"
    vol = read_volume_file(path)
    data = np.asanyarray(nib.load(path).dataobj)
    assert data.ndim == 4 and vol.shape == data.shape[2::-1]
    np.testing.assert_array_equal(vol.array, data[..., 0].transpose(2, 1, 0))
    assert any("4D image with 4 volumes" in w for w in vol.warnings)


def test_2d_and_rgb_images(shared_data, tmp_path):
    img = sitk.ReadImage(str(shared_data / CT_NII))
    plane = img[:, :, 12]  # a real 2D slice
    sitk.WriteImage(plane, str(tmp_path / "slice.nrrd"))
    vol = read_volume_file(tmp_path / "slice.nrrd")
    assert vol.shape == (1,) + plane.GetSize()[::-1]
    np.testing.assert_array_equal(vol.array[0], sitk.GetArrayFromImage(plane))
    np.testing.assert_allclose(vol.geometry.index_to_lps((3, 4, 0))[:2],
                               plane.TransformIndexToPhysicalPoint((3, 4)), atol=1e-6)
    u8 = sitk.Cast(sitk.RescaleIntensity(img), sitk.sitkUInt8)
    rgb = sitk.Compose(u8, sitk.InvertIntensity(u8, 255), u8 // 2)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    vol = read_volume_file(tmp_path / "rgb.nrrd")
    assert vol.is_rgb and vol.array.shape == img.GetSize()[::-1] + (3,)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(rgb))
    vec = sitk.Compose(img, img)  # 2 int16 components: first one kept
    sitk.WriteImage(vec, str(tmp_path / "vec.nrrd"))
    vol = read_volume_file(tmp_path / "vec.nrrd")
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
    assert any("2 components" in w for w in vol.warnings)


@pytest.mark.parametrize("rel, name", [
    (CT_NII, "t.nii.gz"), ("monai_testing_data/tests/testing_data/anatomical.nii", "t.nii"),
    ("pyradiomics_data/data/brain1_image.nrrd", "t.nrrd")])
def test_truncated_files_raise_load_error(shared_data, tmp_path, rel, name):
    # SimpleITK itself reads truncated NIfTI files without complaint (garbage voxels)
    data = (shared_data / rel).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="t\\.n"):
        read_volume_file(tmp_path / name)


def test_corrupt_mha_mgz_and_garbage_raise_load_error(shared_data, tmp_path):
    img = sitk.ReadImage(str(shared_data / CT_NII))
    sitk.WriteImage(img, str(tmp_path / "ok.mha"))
    data = (tmp_path / "ok.mha").read_bytes()
    (tmp_path / "cut.mha").write_bytes(data[: len(data) // 2])
    nii = nib.load(shared_data / CT_NII)
    nib.save(nib.MGHImage(np.asanyarray(nii.dataobj), nii.affine), tmp_path / "ok.mgz")
    data = (tmp_path / "ok.mgz").read_bytes()
    (tmp_path / "cut.mgz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image at all" * 50)
    (tmp_path / "junk.nrrd").write_bytes(b"NRRD0004\ntype: banana\n\n")
    for name in ("cut.mha", "cut.mgz", "junk.nii.gz", "junk.nrrd", "missing.nii"):
        with pytest.raises(LoadError, match=name.replace(".", "\\.")):
            read_volume_file(tmp_path / name)
    with pytest.raises(LoadError, match="not a volume file"):
        read_volume_file(shared_data / "dcm_qa_enh/README.md")


def test_is_volume_file_and_scan_integration(shared_data):
    for name in ("a.nii", "A.NII.GZ", "b.nrrd", "b.nhdr", "c.mha", "c.mhd", "d.mgz", "d.mgh"):
        assert is_volume_file(name)
    for name in ("a.dcm", "a.gz", "a.raw", "nii", "a.nii.bak", "README.md"):
        assert not is_volume_file(name)
    cat = scan_paths([shared_data / "pyradiomics_data/data"])
    files = [e for e in cat.series if e.kind == "file"]
    assert len(files) == 8
    vol = load_series(files[0])
    assert vol.shape == vol.geometry.shape


# ---------------------------------------------------------------------------- NIfTI writer
def test_write_nifti_round_trip(shared_data, tmp_path):
    vol = read_volume_file(shared_data / "pyradiomics_data/data/brain1_image.nrrd")
    out = write_nifti(vol, tmp_path / "sub" / "brain.nii.gz")
    assert out.exists() and sorted(os.listdir(out.parent)) == ["brain.nii.gz"]  # no temp left
    back = read_volume_file(out)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.array.dtype == np.int16
    np.testing.assert_allclose(back.geometry.affine_lps(), vol.geometry.affine_lps(), atol=1e-4)
    hdr = nib.load(out).header
    assert int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1
    assert hdr.get_xyzt_units()[0] == "mm"
    with open(out, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"  # gzip by suffix
    write_nifti(vol, tmp_path / "brain.nii")
    with open(tmp_path / "brain.nii", "rb") as fh:
        assert fh.read(4) == (348).to_bytes(4, "little")


def test_write_nifti_sheared_geometry_keeps_true_positions(shared_data, tmp_path):
    vol = read_volume_file(shared_data / CT_NII)
    g = vol.geometry
    d = g.direction_matrix.copy()
    d[:, 2] = [0.0, np.sin(0.3), np.cos(0.3)]  # 17 degree gantry tilt
    tilted = Volume(vol.array, Geometry(g.shape, g.spacing, g.origin, tuple(d.ravel())))
    write_nifti(tilted, tmp_path / "tilt.nii.gz")
    img = nib.load(tmp_path / "tilt.nii.gz")
    assert int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.header.get_sform(), tilted.geometry.affine_ras(), atol=1e-4)
    # SimpleITK refuses a sheared NIfTI; the reader falls back to nibabel and keeps the tilt
    back = read_volume_file(tmp_path / "tilt.nii.gz")
    assert any("read with nibabel" in w for w in back.warnings)
    assert back.geometry.tilt_degrees() == pytest.approx(np.degrees(0.3), abs=1e-3)
    np.testing.assert_allclose(back.geometry.index_to_lps((5, 6, 7)),
                               tilted.geometry.index_to_lps((5, 6, 7)), atol=1e-3)
    np.testing.assert_array_equal(back.array, vol.array)


def test_write_nifti_refusals_and_rgb(shared_data, tmp_path):
    vol = read_volume_file(shared_data / CT_NII)
    g = vol.geometry
    uneven = Volume(vol.array[:3], Geometry((3,) + g.shape[1:], g.spacing, g.origin, g.direction,
                                            slice_offsets=(0.0, 3.0, 9.0)))
    with pytest.raises(WriteError, match="--resample"):
        write_nifti(uneven, tmp_path / "u.nii.gz")
    with pytest.raises(WriteError, match=".nii"):
        write_nifti(vol, tmp_path / "u.nrrd")
    assert not list(tmp_path.iterdir())
    rgb_arr = np.stack([np.clip(vol.array, 0, 255).astype(np.uint8),
                        np.clip(-vol.array, 0, 255).astype(np.uint8),
                        np.full(vol.shape, 7, np.uint8)], axis=-1)
    write_nifti(Volume(rgb_arr, g), tmp_path / "rgb.nii.gz")
    assert nib.load(tmp_path / "rgb.nii.gz").header["datatype"] == 128  # NIfTI RGB24
    back = read_volume_file(tmp_path / "rgb.nii.gz")
    assert back.is_rgb
    np.testing.assert_array_equal(back.array, rgb_arr)


def test_write_nifti_keeps_the_old_file_when_writing_fails(shared_data, tmp_path):
    vol = read_volume_file(shared_data / CT_NII)
    shutil.copy(shared_data / CT_NII, tmp_path / "ct.nii.gz")
    bad = Volume(np.zeros(vol.shape, dtype=np.complex64), vol.geometry)
    with pytest.raises(WriteError):
        write_nifti(bad, tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(read_volume_file(tmp_path / "ct.nii.gz").array, vol.array)
    assert sorted(os.listdir(tmp_path)) == ["ct.nii.gz"]
