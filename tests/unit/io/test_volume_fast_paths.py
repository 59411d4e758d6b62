"""The fast NIfTI/NRRD paths (voxels read raw, SimpleITK's buffer shared without a copy) give
exactly what the previous reader gave: SimpleITK's ``ReadImage`` + ``GetArrayFromImage``
(first volume of a 4D image, a 2D image as one slice) and its origin/spacing/direction, on
every NIfTI and NRRD of the shared data and on variants of a real CT (every stored type,
big-endian, scaled, 2D, 4D, NIfTI-2, vox_offset 0, .nii and .nii.gz)."""
import gc
import gzip
import struct

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.io.load import LoadError
from medviewer.io.volume_files import read_volume_file
from medviewer.io.volume_pixels import GZ_RAW_LIMIT

CT_NII = "totalseg/tests/reference_files/example_ct_sm.nii.gz"


def _previous_reader(path):
    """What ``read_volume_file`` returned before the fast paths: (array, origin, spacing,
    direction) from SimpleITK, post-processed as ``_read_sitk`` did."""
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    dim = img.GetDimension()
    spacing, origin = list(img.GetSpacing()), list(img.GetOrigin())
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    if dim == 4:
        arr, spacing, origin, direction = arr[0], spacing[:3], origin[:3], direction[:3, :3]
    elif dim == 2:
        d3 = np.eye(3)
        d3[:2, :2] = direction
        arr, spacing, origin, direction = arr[np.newaxis], spacing + [1.0], origin + [0.0], d3
    if img.GetNumberOfComponentsPerPixel() > 1 and not (
            img.GetNumberOfComponentsPerPixel() == 3 and arr.dtype == np.uint8):
        arr = arr[..., 0]
    return arr, tuple(origin), tuple(spacing), tuple(direction.ravel())


def _assert_as_before(path):
    vol = read_volume_file(path)
    arr, origin, spacing, direction = _previous_reader(path)
    assert vol.array.dtype == arr.dtype and vol.array.dtype.isnative
    assert vol.array.shape == arr.shape and vol.array.flags.c_contiguous
    np.testing.assert_array_equal(vol.array, arr)
    g = vol.geometry
    assert tuple(g.origin) == origin and tuple(g.spacing) == spacing  # exactly, not close
    assert tuple(g.direction) == direction
    return vol


def _shared_files(root):
    names = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
    return sorted(p for p in root.rglob("*") if p.name.lower().endswith(names))


def test_every_shared_nifti_and_nrrd_reads_as_before(shared_data):
    files = _shared_files(shared_data)
    assert len(files) >= 40  # 31 NIfTI and 12 NRRD in this copy
    for path in files:
        _assert_as_before(path)


def _nifti_bytes(data, affine, klass=nib.Nifti1Image, header=None) -> bytes:
    img = klass(data, affine, header=header)
    return img.to_bytes()


def _write(tmp_path, name: str, raw: bytes):
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw, 1) if name.endswith(".gz") else raw)
    return path


def _set_scaling(raw: bytes, slope: float, inter: float) -> bytes:
    b = bytearray(raw)
    b[112:120] = struct.pack("<ff", slope, inter)  # NIfTI-1 scl_slope, scl_inter
    return bytes(b)


@pytest.fixture(scope="module")
def ct(shared_data):
    img = nib.load(shared_data / CT_NII)
    return np.asanyarray(img.dataobj), img.affine


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32",
                                   "int64", "float32", "float64"])
def test_stored_types_little_and_big_endian(ct, tmp_path, suffix, dtype):
    data, affine = ct
    values = np.clip(data, *((-128, 127) if dtype == "int8" else (0, 255) if dtype.startswith("u")
                             else (-1024, 3000))).astype(dtype)
    for order in "<>":
        hdr = nib.Nifti1Header(endianness=order)
        hdr.set_data_dtype(np.dtype(dtype).newbyteorder(order))
        raw = _nifti_bytes(values, affine, header=hdr)
        path = _write(tmp_path, ("le" if order == "<" else "be") + suffix, raw)
        vol = _assert_as_before(path)
        np.testing.assert_array_equal(vol.array, values.transpose(2, 1, 0))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("slope, inter", [(np.nan, np.nan), (1, 0), (0, 0), (np.nan, 0),
                                          (2, -1024), (1, -1024), (0.5, 0)])
def test_scaling_fields(ct, tmp_path, suffix, slope, inter):
    data, affine = ct
    raw = _set_scaling(_nifti_bytes(data, affine), slope, inter)
    vol = _assert_as_before(_write(tmp_path, "s" + suffix, raw))
    if slope == 2:  # really scaled (SimpleITK's float32), not the raw int16
        assert vol.array.dtype == np.float32
        np.testing.assert_allclose(vol.array, data.transpose(2, 1, 0) * 2.0 - 1024)
    # a NaN intercept with a slope: nibabel refuses the header (as before)
    with pytest.raises(LoadError, match="invalid intercept"):
        read_volume_file(_write(tmp_path, "bad" + suffix, _set_scaling(raw, 1, np.nan)))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_2d_4d_nifti2_and_vox_offset_0(ct, tmp_path, suffix):
    data, affine = ct
    _assert_as_before(_write(tmp_path, "plane" + suffix, _nifti_bytes(data[:, :, 7], affine)))
    four = np.stack([data, data[::-1]], axis=3)
    vol = _assert_as_before(_write(tmp_path, "four" + suffix, _nifti_bytes(four, affine)))
    assert any("4D image with 2 volumes" in w for w in vol.warnings)
    # NIfTI-2: SimpleITK cannot read it; nibabel does, as before
    vol = read_volume_file(_write(tmp_path, "two" + suffix,
                                  _nifti_bytes(data, affine, klass=nib.Nifti2Image)))
    np.testing.assert_array_equal(vol.array, data.transpose(2, 1, 0))
    assert any("SimpleITK refused" in w for w in vol.warnings)
    raw = bytearray(_nifti_bytes(data, affine))
    raw[108:112] = struct.pack("<f", 0.0)  # vox_offset 0 (old writers): SimpleITK reads
    _assert_as_before(_write(tmp_path, "off0" + suffix, bytes(raw)))  # from byte 348, as before


def test_large_gz_goes_to_simpleitk_and_matches(shared_data, tmp_path, ct):
    data, affine = ct
    big = np.concatenate([data] * (GZ_RAW_LIMIT // data.nbytes + 2), axis=2)
    assert big.nbytes > GZ_RAW_LIMIT
    vol = _assert_as_before(_write(tmp_path, "big.nii.gz", _nifti_bytes(big, affine)))
    assert vol.array.base is not None  # SimpleITK's buffer, shared


def test_shared_buffer_outlives_the_simpleitk_image(shared_data):
    path = shared_data / "pyradiomics_data/data/brain1_image.nrrd"
    arr = read_volume_file(path).array
    gc.collect()
    junk = [np.full(arr.shape, 7, arr.dtype) for _ in range(8)]  # reuse any freed memory
    np.testing.assert_array_equal(arr, sitk.GetArrayFromImage(sitk.ReadImage(str(path))))
    assert len(junk) == 8 and not arr.flags.writeable


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_and_corrupt_small_files_raise(ct, tmp_path, suffix):
    data, affine = ct
    raw = _nifti_bytes(data, affine)
    cut = _write(tmp_path, "cut" + suffix, raw[: len(raw) - 1000])
    with pytest.raises(LoadError, match="truncated"):
        read_volume_file(cut)
    if suffix == ".nii.gz":
        blob = bytearray(gzip.compress(raw, 1))
        blob[len(blob) // 2] ^= 0xFF  # a flipped byte inside the deflate stream
        (tmp_path / "bad.nii.gz").write_bytes(bytes(blob))
        with pytest.raises(LoadError, match="bad\\.nii\\.gz"):
            read_volume_file(tmp_path / "bad.nii.gz")


def test_multi_member_gzip_reads_as_before(ct, tmp_path):
    data, affine = ct
    raw = _nifti_bytes(data, affine)
    half = len(raw) // 2  # two gzip members, as `cat a.gz b.gz` makes
    (tmp_path / "two.nii.gz").write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    vol = _assert_as_before(tmp_path / "two.nii.gz")
    np.testing.assert_array_equal(vol.array, data.transpose(2, 1, 0))


def test_nibabel_path_reads_after_the_extensions(ct, tmp_path):
    # a sheared sform (gantry tilt): SimpleITK refuses it and nibabel reads it; its voxels
    # start after the extension (vox_offset > 352), not at 352 (the old proxy's start)
    data, affine = ct
    sheared = affine.copy()
    sheared[1, 2] = 0.4 * affine[2, 2]
    img = nib.Nifti1Image(data, sheared)
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"x" * 500))
    img.header.set_qform(None, code=0)
    img.header.set_sform(sheared, code=1)
    path = tmp_path / "tilt.nii"
    nib.save(img, path)
    assert nib.load(path).dataobj.offset > 352
    vol = read_volume_file(path)
    assert any("nibabel" in w for w in vol.warnings)
    np.testing.assert_array_equal(vol.array, data.transpose(2, 1, 0))
