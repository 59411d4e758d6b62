"""2.5D input (card ``input.context_mm``): each channel is the volume at a fixed distance in mm
above or below the slice, through the same function that inference, OOD scoring and fine-tuning
use (``preprocess.to_model_tensor``). Checked on the real 3 mm TotalSegmentator CT."""
from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.preprocess import plan_resample, to_model_tensor
from medviewer.ai.starters.ct_data import _canonical_nifti
from medviewer.ai.starters.trunk_data import REF_DIR


CT_WINDOW = {"type": "ct_window", "center": -200.0, "width": 1800.0}
LINEAR = {"type": "scale", "min": -3000.0, "max": 5000.0}  # no clipping: interpolation is exact


def _card(context=None, intensity=CT_WINDOW):
    spec = {"dims": 2, "channels": 1 if context is None else len(context), "spacing": [2.0, 2.0],
            "patch": [256, 256], "intensity": dict(intensity)}
    if context is not None:
        spec["context_mm"] = list(context)
    return {"labels": ["background", "x"], "input": spec}


@pytest.fixture(scope="module")
def ct():
    vol, spacing = _canonical_nifti(REF_DIR / "example_ct.nii.gz")
    assert spacing[0] == 3.0
    return vol.astype(np.float32), spacing


def _plain(vol, spacing, z, intensity=CT_WINDOW):
    info = plan_resample(vol, spacing, _card(intensity=intensity))
    return to_model_tensor(vol, info, (z, z + 1))[0, 0].numpy()


def test_context_channels_are_the_neighbouring_slices(ct):
    vol, spacing = ct
    info = plan_resample(vol, spacing, _card([-3.0, 0.0, 3.0]))
    assert info.context == (-1.0, 0.0, 1.0) and info.to_dict()["context_slices"] == [-1, 0, 1]
    x = to_model_tensor(vol, info, (40, 43)).numpy()  # (3 channels, 3 slices, y', x')
    assert x.shape[:2] == (3, 3)
    for k, z in enumerate(range(40, 43)):
        for c, dz in enumerate((-1, 0, 1)):
            np.testing.assert_allclose(x[c, k], _plain(vol, spacing, z + dz), atol=1e-6)
    assert np.abs(x[0, 1] - x[2, 1]).mean() > 0.01  # real anatomy changes over 6 mm


def test_context_interpolates_in_millimetres_and_clamps_at_the_ends(ct):
    vol, spacing = ct
    # half a slice below, 1.5 slices above; a linear intensity map, so that the expected
    # values are the plain means (the CT window's clipping is applied after interpolation)
    info = plan_resample(vol, spacing, _card([-1.5, 0.0, 4.5], LINEAR))
    x = to_model_tensor(vol, info, (0, 112)).numpy()

    def plain(z):
        return _plain(vol, spacing, z, LINEAR)

    np.testing.assert_allclose(x[0, 50], 0.5 * (plain(49) + plain(50)), atol=1e-5)
    np.testing.assert_allclose(x[2, 50], 0.5 * (plain(51) + plain(52)), atol=1e-5)
    np.testing.assert_allclose(x[0, 0], plain(0), atol=1e-6)  # below the first slice
    np.testing.assert_allclose(x[2, 111], plain(111), atol=1e-6)  # above the last


def test_context_spec_errors_are_clear(ct):
    vol, spacing = ct
    card = _card([-3.0, 3.0])
    card["input"]["channels"] = 3
    with pytest.raises(ValueError, match="one finite offset per input channel"):
        plan_resample(vol, spacing, card)
    with pytest.raises(ValueError, match="positive slice spacing"):
        plan_resample(vol, (0.0, 3.0, 3.0), _card([-3.0, 0.0, 3.0]))


def test_context_from_a_torch_volume_equals_numpy(ct):
    """The GPU path hands to_model_tensor a torch tensor already on the device."""
    torch = pytest.importorskip("torch")
    vol, spacing = ct
    info = plan_resample(vol, spacing, _card([-3.0, 0.0, 3.0]))
    a = to_model_tensor(vol, info, (30, 34))
    b = to_model_tensor(torch.from_numpy(vol), info, (30, 34))
    assert torch.allclose(a, b)
