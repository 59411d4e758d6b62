"""Prompts on MR (TotalSegmentator's 3 mm abdominal MR, 20 slices, with its MR labels: a strong
model's output, not manual): one click in the right kidney and in the liver with the learned
engine, 2D and carried through the slices (G). Where it works and how far (measured on this
data, see the change's report): the kidney in 2D and 3D; the liver on the clicked slice. The
liver's 3D propagation leaks into the body wall on the caudal slices (Dice 0.72): asserted
loosely, as a known limit of the CT-trained model on MR, not as a goal."""
import numpy as np
import pytest
from scipy import ndimage

from medviewer.core.click_sim import dice
from medviewer.services.interactive import load_volume, reference_mask
from medviewer.services.prompt_session import PromptEntry, PromptSession, run_snapshot

TOTALSEG = "totalseg/tests/reference_files"
KIDNEY_RIGHT, LIVER = 2, 5  # TotalSegmentator MR classes


@pytest.fixture(scope="module")
def mr(shared_data):
    vol = load_volume(shared_data / TOTALSEG / "example_mr_sm.nii.gz")
    labels = shared_data / TOTALSEG / "example_seg_mr.nii.gz"
    return vol, {v: reference_mask(labels, vol.geometry, v) for v in (KIDNEY_RIGHT, LIVER)}


def _deepest(mask2d):
    d = ndimage.distance_transform_edt(mask2d)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(d)), d.shape))


def _click_and_propagate(vol, ref, z):
    s = PromptSession("learned")
    s.add(PromptEntry("point", ((z,) + _deepest(ref[z]),)))
    flat = run_snapshot(vol, s.snapshot(), s.cache)
    s.set_three_d(True)
    return flat, run_snapshot(vol, s.snapshot(), s.cache)


def test_a_click_in_the_right_kidney_segments_it_in_2d_and_3d(mr):
    vol, refs = mr
    ref, z = refs[KIDNEY_RIGHT], 5
    flat, deep = _click_and_propagate(vol, ref, z)
    d2, d3 = dice(flat[z], ref[z]), dice(deep, ref)
    zs, ref_zs = np.flatnonzero(deep.any(axis=(1, 2))), np.flatnonzero(ref.any(axis=(1, 2)))
    print(f"\nMR right kidney: 2D Dice {d2:.3f}, 3D Dice {d3:.3f}, slices {zs.min()}-{zs.max()} "
          f"(reference {ref_zs.min()}-{ref_zs.max()})")
    assert d2 > 0.8 and d3 > 0.8  # measured 0.88 and 0.86
    assert zs.max() <= ref_zs.max() + 2  # it stops where the kidney ends


def test_a_click_in_the_liver(mr):
    vol, refs = mr
    ref, z = refs[LIVER], 15
    flat, deep = _click_and_propagate(vol, ref, z)
    d2, d3 = dice(flat[z], ref[z]), dice(deep, ref)
    print(f"\nMR liver: 2D Dice {d2:.3f}, 3D Dice {d3:.3f}, {int(deep.sum())} voxels "
          f"(reference {int(ref.sum())})")
    assert d2 > 0.8  # measured 0.85
    assert d3 > 0.6 and deep.sum() < 2 * ref.sum()  # measured 0.72 (too large: body wall)
