"""Our U-Net is MONAI's UNet: the same parameter names and shapes, the same outputs."""
import pytest
import torch
from monai.networks.nets import UNet as MonaiUNet

from medviewer.ai.architectures import build
from medviewer.ai.registry import ModelRegistry, load_model
from medviewer.ai.unet import UNet

CONFIGS = [
    dict(spatial_dims=2, in_channels=1, out_channels=7, channels=[16, 32, 64, 128, 256],
         strides=[2, 2, 2, 2], num_res_units=2, norm="instance", dropout=0.1),
    dict(spatial_dims=2, in_channels=7, out_channels=2, channels=[8, 16, 32],
         strides=[2, 2], num_res_units=0, norm="batch", dropout=0.0),
    dict(spatial_dims=3, in_channels=1, out_channels=3, channels=[4, 8, 16],
         strides=[2, 1], num_res_units=1, norm="instance", dropout=0.0),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_same_parameters_and_outputs_as_monai(cfg):
    torch.manual_seed(0)
    theirs = MonaiUNet(**dict(cfg, norm=cfg["norm"].upper())).eval()
    ours = UNet(**cfg).eval()
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    ours.load_state_dict(a)  # MONAI's weights load as they are
    shape = (2, cfg["in_channels"]) + (32,) * cfg["spatial_dims"]
    x = torch.rand(shape)
    with torch.inference_mode():
        assert torch.equal(theirs(x), ours(x))
    assert [type(m).__name__ for m in ours.modules() if isinstance(m, torch.nn.Dropout)] == \
        [type(m).__name__ for m in theirs.modules() if isinstance(m, torch.nn.Dropout)]


def test_the_registry_builds_ours_and_the_ct_model_loads():
    card = ModelRegistry().get("ct-abdomen-organs:1.0.0")
    assert isinstance(build(card.architecture["name"], card.architecture["params"]), UNet)
    assert isinstance(load_model(card), UNet)


@pytest.mark.parametrize("size", [(230, 230), (100, 300), (160, 161), (90, 90)])
def test_our_2d_sliding_window_equals_monais(size):
    from monai.inferers import sliding_window_inference

    from medviewer.ai.inference import sliding_window_2d

    torch.manual_seed(1)
    net = UNet(2, 1, 3, [4, 8, 16], [2, 2], num_res_units=1).eval()
    x = torch.rand((3, 1) + size)
    with torch.inference_mode():
        theirs = sliding_window_inference(x, (160, 160), 3, net, overlap=0.25, mode="constant")
        ours = sliding_window_2d(x, (160, 160), net, 0.25)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-6)
