"""A U-Net with residual units, layer for layer and parameter name for parameter name the same
network as MONAI's ``monai.networks.nets.UNet`` (PReLU activations, instance or batch norm,
dropout, "NDA" order, 3x3 kernels), built from torch alone.

Why: ``import monai`` imports every MONAI submodule (transforms, data, apps, matplotlib,
scipy.signal...), ~2.5 s and ~120 MB before the first slice of every ``medviewer predict``.
Weights saved from either network load into the other (``tests/unit/ai/test_unet.py``
checks the keys and the outputs against MONAI's).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["UNet", "SkipConnection"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_NORM = {"instance": {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d},
         "batch": {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}}


class SkipConnection(nn.Module):
    """``cat([x, submodule(x)], channels)``."""

    def __init__(self, submodule: nn.Module):
        super().__init__()
        self.submodule = submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.submodule(x)], dim=1)


def _adn(dims: int, channels: int, norm: str, dropout: float) -> nn.Sequential:
    """Norm, dropout, PReLU (MONAI's ADN in "NDA" order: modules N, D, A)."""
    adn = nn.Sequential()
    adn.add_module("N", _NORM[norm][dims](channels))
    adn.add_module("D", nn.Dropout(dropout))
    adn.add_module("A", nn.PReLU())
    return adn


def _convolution(dims: int, cin: int, cout: int, stride: int, norm: str, dropout: float,
                 conv_only: bool = False, transposed: bool = False) -> nn.Sequential:
    """MONAI's ``Convolution``: a 3x3 conv (or transposed conv) named ``conv``, then ``adn``."""
    block = nn.Sequential()
    if transposed:
        conv = _CONV_T[dims](cin, cout, 3, stride=stride, padding=1, output_padding=stride - 1)
    else:
        conv = _CONV[dims](cin, cout, 3, stride=stride, padding=1)
    block.add_module("conv", conv)
    if not conv_only:
        block.add_module("adn", _adn(dims, cout, norm, dropout))
    return block


class _ResidualUnit(nn.Module):
    """MONAI's ``ResidualUnit``: ``subunits`` convolutions (``conv.unit0`` ...) plus a residual
    path (a strided 3x3 conv, a 1x1 conv when only the channels change, else identity)."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int, subunits: int, norm: str,
                 dropout: float, last_conv_only: bool = False):
        super().__init__()
        self.conv = nn.Sequential()
        c, s = cin, stride
        subunits = max(1, subunits)
        for su in range(subunits):
            only = last_conv_only and su == subunits - 1
            self.conv.add_module(f"unit{su:d}", _convolution(dims, c, cout, s, norm, dropout, only))
            c, s = cout, 1
        self.residual: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            k, pad = (3, 1) if stride != 1 else (1, 0)
            self.residual = _CONV[dims](cin, cout, k, stride, pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.residual(x)


class UNet(nn.Module):
    """See the module docstring; ``norm`` is "instance" or "batch"."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 channels: Sequence[int], strides: Sequence[int], num_res_units: int = 0,
                 norm: str = "instance", dropout: float = 0.0):
        super().__init__()
        if len(channels) < 2 or len(strides) != len(channels) - 1:
            raise ValueError("a U-Net needs >= 2 channels and one stride fewer")
        norm = norm.lower()
        dims, units = int(spatial_dims), int(num_res_units)

        def down(cin: int, cout: int, stride: int) -> nn.Module:
            if units > 0:
                return _ResidualUnit(dims, cin, cout, stride, units, norm, dropout)
            return _convolution(dims, cin, cout, stride, norm, dropout)

        def up(cin: int, cout: int, stride: int, top: bool) -> nn.Module:
            conv = _convolution(dims, cin, cout, stride, norm, dropout,
                                conv_only=top and units == 0, transposed=True)
            if units > 0:
                return nn.Sequential(conv, _ResidualUnit(dims, cout, cout, 1, 1, norm, dropout,
                                                         last_conv_only=top))
            return conv

        def block(cin: int, cout: int, chans: Sequence[int], strs: Sequence[int],
                  top: bool) -> nn.Module:
            c, s = chans[0], strs[0]
            if len(chans) > 2:
                sub, upc = block(c, c, chans[1:], strs[1:], False), c * 2
            else:
                sub, upc = down(c, chans[1], 1), c + chans[1]
            return nn.Sequential(down(cin, c, s), SkipConnection(sub), up(upc, cout, s, top))

        self.model = block(int(in_channels), int(out_channels), [int(c) for c in channels],
                           [int(s) for s in strides], True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
