"""Preprocessing on real data: chest-CT grid round trips, intensity specs, 2D image preparation."""
import numpy as np
import pydicom.data
import pytest
from scipy.ndimage import gaussian_filter, maximum_filter, minimum_filter

from medviewer.ai.cards import ModelCard
from medviewer.ai.preprocess import (apply_intensity, intensity_bounds, map_to_image,
                                     model_to_volume, plan_resample, prepare_image_2d,
                                     prepare_image_2d_info, to_model_grid, volume_to_model)
from medviewer.ai.starters.common import apply_intensity as reference_intensity
from medviewer.io.load import open_first

CT_WINDOW = {"type": "ct_window", "center": 40, "width": 400}


def seg_card(dims, spacing, patch, labels=("background", "soft tissue", "bone")):
    return ModelCard.from_dict({
        "name": "test-seg", "version": "0.1.0", "task": "segmentation", "labels": list(labels),
        "input": {"dims": dims, "channels": 1, "spacing": spacing, "patch": patch,
                  "intensity": CT_WINDOW},
        "architecture": {"name": "monai_basicunet", "params": {
            "spatial_dims": dims, "out_channels": len(labels)}},
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64}})


@pytest.fixture(scope="module")
def ct(chest_ct_dir):
    return open_first([chest_ct_dir])


@pytest.fixture(scope="module")
def ct_labels(ct):
    """Organ-like labels on the CT grid: smoothed CT split into soft tissue and bone."""
    smooth = gaussian_filter(ct.array.astype(np.float32), sigma=(0.7, 2.5, 2.5))
    lab = np.zeros(ct.shape, np.uint8)
    lab[(smooth > -400) & (smooth < 200)] = 1
    lab[smooth >= 200] = 2
    boundary = maximum_filter(lab, size=(3, 5, 5)) != minimum_filter(lab, size=(3, 5, 5))
    return lab, boundary


def spacing_zyx(vol):
    sx, sy, sz = vol.geometry.spacing
    return (sz, sy, sx)


def _to_model_labels(labels, info):
    """Labels onto the model grid with nearest-neighbour (what a training pipeline does)."""
    import torch

    from medviewer.ai.preprocess import _resize_xy, _resize_z

    t = torch.from_numpy(labels.astype(np.float32))[None]
    if info.dims == 3:
        t = _resize_z(t, info.model_shape[0], False)
    return _resize_xy(t.transpose(0, 1), info.model_shape[1:], False).transpose(0, 1)[0].numpy()


@pytest.mark.parametrize("dims,spacing,expected", [
    (2, [1.5, 1.5], (100, 307, 307)),
    (3, [3.0, 1.5, 1.5], (83, 307, 307)),
])
@pytest.mark.slow
def test_label_round_trip_on_the_chest_ct_grid(ct, ct_labels, dims, spacing, expected):
    ct_labels, boundary = ct_labels
    card = seg_card(dims, spacing, [64] * dims)
    info = plan_resample(ct.array, spacing_zyx(ct), card)
    assert info.model_shape == expected and info.original_shape == (100, 512, 512)
    model_labels = _to_model_labels(ct_labels, info).astype(np.uint8)
    back = model_to_volume(model_labels, info, "nearest")
    assert back.shape == ct.shape and back.dtype == np.uint8
    # probabilities (one-hot) resampled linearly back, then argmax
    onehot = np.stack([(model_labels == k) for k in range(3)]).astype(np.float32)
    probs = model_to_volume(onehot, info, "linear")
    assert probs.shape == (3,) + ct.shape
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    for result in (back, probs.argmax(0)):
        wrong = result != ct_labels
        assert wrong.mean() < 0.02
        assert not np.any(wrong & ~boundary), "mismatches away from label boundaries"


def test_ct_window_and_intensity_on_model_grid(ct):
    card = seg_card(2, [1.5, 1.5], [64, 64])
    x, info = volume_to_model(ct.array[40:42], spacing_zyx(ct), card)
    assert x.shape == (1, 2, 307, 307) and x.dtype == np.float32
    assert info.bounds == (-160.0, 240.0)
    assert x.min() == 0.0 and x.max() == 1.0  # air clipped to 0, bone to 1
    # a slab of a 2D model is the same as those slices of the whole volume
    info_all = plan_resample(ct.array, spacing_zyx(ct), card)
    np.testing.assert_allclose(to_model_grid(ct.array, info_all, (40, 42)), x, atol=1e-6)
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    np.testing.assert_allclose(apply_intensity(hu, info.bounds), [0, 0, 0.5, 1, 1])


def test_percentile_bounds_follow_the_data(ct):
    """Percentiles come from a subsample of big volumes: close to the exact ones."""
    lo, hi = intensity_bounds(ct.array, {"type": "percentile", "lo": 30, "hi": 99})
    exact = np.percentile(ct.array, [30, 99])
    assert lo == pytest.approx(exact[0], abs=30) and hi == pytest.approx(exact[1], abs=30)
    assert lo > -1100 and hi > 0  # outside-FOV padding (-3024) is below the 30th percentile
    assert intensity_bounds(ct.array, {"type": "scale", "min": 0, "max": 255}) == (0.0, 255.0)
    assert intensity_bounds(ct.array, None) is None


def test_uneven_spacing_uses_the_median_step_and_says_so(shared_data):
    vol = open_first([shared_data / "monai_testing_data/tests/testing_data/CT_DICOM"])
    assert vol.geometry.is_uneven
    offs = vol.geometry.slice_offsets
    sx, sy, sz = vol.geometry.spacing
    card3 = seg_card(3, [3.0, 1.5, 1.5], [16, 32, 32])
    info = plan_resample(vol.array, (sz, sy, sx), card3, slice_offsets=offs)
    median = float(np.median(np.diff(offs)))
    assert info.spacing_zyx[0] == pytest.approx(median)
    assert any("uneven" in w and "median" in w for w in info.warnings)
    x = to_model_grid(vol.array, info)
    assert x.shape[1:] == info.model_shape
    # a 2D model does not care about the slice spacing: no warning
    info2 = plan_resample(vol.array, (sz, sy, sx), seg_card(2, [1.5, 1.5], [32, 32]), offs)
    assert info2.warnings == [] and info2.model_shape[0] == vol.shape[0]


def test_pneumonia_png_preparation_matches_the_training_pipeline(shared_data):
    """The starter trainer's reference intensity code and ours agree exactly on 28x28 input."""
    spec = {"dims": 2, "channels": 1, "size": [28, 28],
            "intensity": {"type": "percentile", "lo": 0.5, "hi": 99.5}}
    card = {"input": spec}
    data = np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz")
    for img in data["test_images"][:20]:
        x = prepare_image_2d(img, card)
        assert x.shape == (1, 28, 28) and x.dtype == np.float32
        np.testing.assert_allclose(x[0], reference_intensity(img, spec["intensity"]), atol=1e-6)


def test_radiograph_is_inverted_cropped_and_maps_back_to_its_size():
    from medviewer.io.load import open_first as load

    vol = load([pydicom.data.get_testdata_file("RG1_UNCI.dcm")])
    assert vol.invert  # MONOCHROME1
    image = vol.array[0]
    card = {"input": {"dims": 2, "channels": 1, "size": [28, 28],
                      "intensity": {"type": "scale", "min": 0, "max": 255}}}
    x, info = prepare_image_2d_info(image, card, invert=True)
    y = prepare_image_2d(image, card, invert=False)
    assert x.shape == (1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert abs((x + y - 1.0).mean()) < 0.02  # inversion flips the display range
    assert info.original_shape == image.shape
    h, w = image.shape
    y0, y1, x0, x1 = info.crop
    assert (y1 - y0) == pytest.approx(x1 - x0, abs=1) and (y1 - y0 == h or x1 - x0 == w)
    heat = map_to_image(np.ones((28, 28), np.float32), info)
    assert heat.shape == image.shape
    assert heat[y0:y1, x0:x1].min() == pytest.approx(1.0) and heat.sum() == pytest.approx(
        (y1 - y0) * (x1 - x0))
