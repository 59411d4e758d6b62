"""Saliency: not constant, full image size, and the map follows the object when it moves.

The built-in pneumonia model is used on real radiographs. Where a trained 28x28 classifier
"looks" on an unusual canvas is the model's business (Grad-CAM of some trained runs favours the
dark background), so the Grad-CAM-follows-the-object check also runs on a small MONAI ResNet
whose weights are made non-negative: its evidence for "present" is, by construction, where the
bright content is, so a map that does not move with the content means our pipeline is wrong
(layer choice, upsampling, crop mapping)."""
import numpy as np
import pydicom.data
import pytest
import torch
from scipy.ndimage import center_of_mass

from medviewer.ai.registry import ModelRegistry, load_model
from medviewer.ai.saliency import grad_cam, integrated_gradients, last_conv_layer
from medviewer.io.load import open_first


@pytest.fixture(scope="module")
def model_and_card():
    card = ModelRegistry().get("pneumonia-cxr")
    return load_model(card), card


@pytest.fixture(scope="module")
def xrays(shared_data):
    data = np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz")
    return data["test_images"][:4]


@pytest.mark.parametrize("method", [grad_cam, integrated_gradients])
def test_map_is_not_constant_and_in_unit_range(model_and_card, xrays, method):
    model, card = model_and_card
    for img in xrays:
        heat = method(model, card, img)
        assert heat.shape == img.shape and heat.dtype == np.float32
        assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
        assert heat.std() > 0.05
    assert not model.training  # left in eval mode


def _centroid_shift(method, model, card, img, shift=20, target=None):
    """A real radiograph at two positions on a larger dark canvas -> centroid (dy, dx) shift."""
    centroids = []
    for x0 in (4, 4 + shift):
        canvas = np.zeros((56, 56), np.uint8)
        canvas[14:42, x0:x0 + 28] = img
        heat = method(model, card, canvas, target=target)
        assert heat.shape == canvas.shape and heat.std() > 0.05
        centroids.append(np.array(center_of_mass(heat)))
    return centroids[1] - centroids[0]


@pytest.fixture(scope="module")
def monotone_net():
    """A small MONAI ResNet with non-negative conv weights: activations grow with brightness;
    the 'present' logit adds them up, 'absent' subtracts them."""
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    net = ResNet("basic", [1, 1, 1, 1], [8, 16, 32, 64], spatial_dims=2, n_input_channels=1,
                 num_classes=2, conv1_t_size=3, conv1_t_stride=1, no_max_pool=True)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.abs_()
        net.fc.weight.abs_()
        net.fc.weight[0].neg_()
    card = {"labels": ["absent", "present"], "input": {
        "dims": 2, "channels": 1, "size": [28, 28],
        "intensity": {"type": "scale", "min": 0, "max": 255}}}
    return net.eval(), card


@pytest.mark.parametrize("method", [grad_cam, integrated_gradients])
def test_map_moves_with_the_object(monotone_net, xrays, method):
    net, card = monotone_net
    for img in xrays:
        dy, dx = _centroid_shift(method, net, card, img, target="present")
        assert dx > 0.6 * 20 and abs(dy) < 0.25 * 20, (method.__name__, dy, dx)


def test_integrated_gradients_of_the_real_model_move_with_the_radiograph(model_and_card, xrays):
    model, card = model_and_card
    for img in xrays:
        dy, dx = _centroid_shift(integrated_gradients, model, card, img)
        assert dx > 0.6 * 20 and abs(dy) < 0.25 * 20, (dy, dx)


@pytest.mark.parametrize("method", [grad_cam, integrated_gradients])
def test_a_large_monochrome1_radiograph_gets_a_map_of_its_own_size(model_and_card, monotone_net,
                                                                    method):
    vol = open_first([pydicom.data.get_testdata_file("RG1_UNCI.dcm")])
    image = vol.array[0]
    model, card = model_and_card
    heat = method(model, card, image, invert=vol.invert)
    assert heat.shape == image.shape and heat.dtype == np.float32
    net, net_card = monotone_net
    heat = method(net, net_card, image, invert=vol.invert, target="present")
    assert heat.shape == image.shape
    assert heat.std() > 0.05 and heat.max() == pytest.approx(1.0)


def test_target_by_name_and_last_conv_layer(model_and_card, xrays):
    model, card = model_and_card
    layer = last_conv_layer(model)
    assert isinstance(layer, torch.nn.Conv2d)
    assert layer is [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    a = grad_cam(model, card, xrays[0], target="normal")
    b = grad_cam(model, card, xrays[0], target=0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown class"):
        grad_cam(model, card, xrays[0], target="fracture")


def test_grad_cam_is_smooth_on_a_large_radiograph(model_and_card):
    """The CAM layer is a few cells across: upsampled bilinearly it showed ridges at every cell
    edge (largest second difference along a row 0.0038 on RG1_UNCI); now it is smooth."""
    vol = open_first([pydicom.data.get_testdata_file("RG1_UNCI.dcm")])
    model, card = model_and_card
    heat = grad_cam(model, card, vol.array[0], target="pneumonia", invert=vol.invert)
    assert heat.max() == pytest.approx(1.0) and heat.std() > 0.05
    assert np.abs(np.diff(heat, 2, axis=1)).max() < 5e-4
