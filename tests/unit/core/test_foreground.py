"""The foreground heat maps are limited to, on real images: the CT body without the air around
it, the brain of the MR template without the empty field, a radiograph's exposed area."""
import glob

import numpy as np
import pydicom.data

from medviewer.core.foreground import foreground_slice, mask_to_foreground
from medviewer.services.studies import load, scan


def _volume(paths):
    return load(scan(paths).series[0])


def test_ct_body_keeps_lungs_and_drops_air_and_the_field_of_view_padding(chest_ct_dir):
    ct = _volume([str(chest_ct_dir)])
    z = 50
    img = ct.array[z]
    m = foreground_slice(img)
    h, w = img.shape
    assert not m[:20].any() and not m[:, :20].any()  # air and padding at the edges
    assert m[h // 2, w // 2]  # mediastinum
    lung = (img < -700) & m
    assert lung.sum() > 0.05 * h * w  # the lungs inside the body are kept (holes filled)
    assert 0.25 < m.mean() < 0.6


def test_mr_brain_template(shared_data):
    path = sorted(glob.glob(str(shared_data / "nilearn_mni152" / "*.nii*")))[0]
    mr = _volume([path])
    m = foreground_slice(mr.array[mr.shape[0] // 2])
    assert 0.1 < m.mean() < 0.6 and not m[0].any() and not m[:, 0].any()


def test_monochrome1_radiograph_is_inverted_first():
    rg = _volume([pydicom.data.get_testdata_file("RG1_UNCI.dcm")])
    assert rg.invert
    seen = foreground_slice(rg.array[0], invert=True)
    assert seen.mean() > 0.9  # the whole exposed chest
    heat = np.ones((1,) + rg.array.shape[1:], np.float32)
    mask_to_foreground(heat, rg.array, True)
    assert heat.sum() == seen.sum()
