"""Network architectures by name: a fixed table of factories with a schema of plain parameters.

A model card names its architecture (``"small_cnn"``, ``"monai_resnet18"``, ``"monai_unet"``, ...)
and gives plain parameters (numbers, booleans, short strings from a fixed choice, lists of
integers). Nothing in a card is ever evaluated or used as a class path: the name picks one of the
factories below and every parameter is checked against that factory's schema first.

``monai_unet`` is built by :mod:`medviewer.ai.unet` (the same network and parameter names as
MONAI's UNet, without importing MONAI). Importing this module does not import torch: :func:`validate_params` and :func:`num_outputs`
are pure Python (the card parser uses them); :func:`build` imports torch/MONAI when called.

Which networks contain dropout (usable for MC-dropout): ``small_cnn`` (always),
``monai_unet`` / ``monai_basicunet`` (when ``dropout`` > 0), ``monai_densenet121`` (when
``dropout_prob`` > 0). ``monai_resnet18`` has none (use test-time augmentation instead).
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["ARCHITECTURES", "TORCH_ONLY", "ModelError", "build", "validate_params", "num_outputs",
           "has_dropout"]


class ModelError(ValueError):
    """A model folder, card, architecture or weights file that cannot be used (clear message)."""


# -- parameter schema ----------------------------------------------------------------------
# spec kinds: ("int", lo, hi) ("float", lo, hi) ("bool",) ("choice", (..)) ("ints", min_len, max_len, lo)

_Spec = tuple


def _check_value(arch: str, key: str, value: Any, spec: _Spec) -> Any:
    kind = spec[0]
    where = f"architecture {arch!r}: parameter {key!r}"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelError(f"{where} must be an integer, got {type(value).__name__}")
        if not spec[1] <= value <= spec[2]:
            raise ModelError(f"{where} = {value} is outside [{spec[1]}, {spec[2]}]")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelError(f"{where} must be a number, got {type(value).__name__}")
        if not spec[1] <= float(value) <= spec[2]:
            raise ModelError(f"{where} = {value} is outside [{spec[1]}, {spec[2]}]")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ModelError(f"{where} must be true or false, got {type(value).__name__}")
        return value
    if kind == "choice":
        if not isinstance(value, str) or value not in spec[1]:
            raise ModelError(f"{where} must be one of {list(spec[1])}, got {value!r}")
        return value
    if kind == "ints":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ModelError(f"{where} must be a list of integers")
        if not spec[1] <= len(value) <= spec[2]:
            raise ModelError(f"{where} must have {spec[1]}..{spec[2]} entries, got {len(value)}")
        if any(v < spec[3] for v in value):
            raise ModelError(f"{where} entries must be >= {spec[3]}")
        return [int(v) for v in value]
    raise AssertionError(kind)  # pragma: no cover


_SCHEMAS: dict[str, dict[str, tuple[_Spec, Any]]] = {
    # our own classic MNIST-style CNN (valid 3x3 convs, 2x2 max-pool, two FC layers)
    "small_cnn": {
        "in_channels": (("int", 1, 16), 1),
        "num_classes": (("int", 2, 1000), 2),
        "input_size": (("int", 8, 512), 28),
        "conv_channels": (("ints", 2, 2, 1), [32, 64]),
        "hidden": (("int", 1, 4096), 128),
        "dropout_conv": (("float", 0.0, 0.95), 0.25),
        "dropout_fc": (("float", 0.0, 0.95), 0.5),
    },
    # monai.networks.nets.ResNet, basic blocks, layers [2, 2, 2, 2] (ResNet-18)
    "monai_resnet18": {
        "spatial_dims": (("int", 2, 3), 2),
        "in_channels": (("int", 1, 16), 1),
        "num_classes": (("int", 2, 1000), 2),
        "block_inplanes": (("ints", 4, 4, 1), [64, 128, 256, 512]),
        "conv1_size": (("int", 1, 7), 7),
        "conv1_stride": (("int", 1, 2), 2),
        "no_max_pool": (("bool",), False),
        "widen_factor": (("float", 0.125, 4.0), 1.0),
    },
    "monai_densenet121": {
        "spatial_dims": (("int", 2, 3), 2),
        "in_channels": (("int", 1, 16), 1),
        "num_classes": (("int", 2, 1000), 2),
        "init_features": (("int", 4, 128), 64),
        "growth_rate": (("int", 4, 64), 32),
        "dropout_prob": (("float", 0.0, 0.95), 0.0),
    },
    "monai_unet": {
        "spatial_dims": (("int", 2, 3), 2),
        "in_channels": (("int", 1, 16), 1),
        "out_channels": (("int", 2, 256), 2),
        "channels": (("ints", 2, 8, 1), [16, 32, 64, 128, 256]),
        "strides": (("ints", 1, 7, 1), [2, 2, 2, 2]),
        "num_res_units": (("int", 0, 4), 2),
        "norm": (("choice", ("batch", "instance")), "batch"),
        "dropout": (("float", 0.0, 0.95), 0.0),
    },
    "monai_basicunet": {
        "spatial_dims": (("int", 2, 3), 2),
        "in_channels": (("int", 1, 16), 1),
        "out_channels": (("int", 2, 256), 2),
        "features": (("ints", 6, 6, 1), [32, 32, 64, 128, 256, 32]),
        "dropout": (("float", 0.0, 0.95), 0.0),
    },
}

ARCHITECTURES: list[str] = sorted(_SCHEMAS)
TORCH_ONLY = frozenset({"small_cnn", "monai_unet"})  # built without importing MONAI

_OUTPUT_KEY = {"small_cnn": "num_classes", "monai_resnet18": "num_classes",
               "monai_densenet121": "num_classes", "monai_unet": "out_channels",
               "monai_basicunet": "out_channels"}
_DROPOUT_KEY = {"small_cnn": None, "monai_resnet18": "", "monai_densenet121": "dropout_prob",
                "monai_unet": "dropout", "monai_basicunet": "dropout"}


def validate_params(name: str, params: Any) -> dict:
    """Check ``params`` against architecture ``name``; return them with defaults filled in.

    Raises :class:`ModelError` for an unknown name, an unknown/missing key or a value that is
    not a plain value of the expected kind."""
    if not isinstance(name, str) or name not in _SCHEMAS:
        raise ModelError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    if not isinstance(params, dict):
        raise ModelError(f"architecture {name!r}: params must be a JSON object of plain values")
    schema = _SCHEMAS[name]
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise ModelError(f"architecture {name!r}: unknown parameter(s) {unknown}; "
                         f"allowed: {sorted(schema)}")
    out = {}
    for key, (spec, default) in schema.items():
        value = params.get(key, default)
        out[key] = _check_value(name, key, value, spec)
    if name == "monai_unet" and len(out["strides"]) != len(out["channels"]) - 1:
        raise ModelError("architecture 'monai_unet': strides must have one entry fewer "
                         "than channels")
    if name == "small_cnn" and out["input_size"] < 6:
        raise ModelError("architecture 'small_cnn': input_size too small")
    return out


def num_outputs(name: str, params: dict) -> int:
    """Number of output channels/classes the network will produce (no torch needed)."""
    return int(validate_params(name, params)[_OUTPUT_KEY[name]])


def has_dropout(name: str, params: dict) -> bool:
    """True when the built network contains Dropout layers (MC-dropout possible)."""
    p = validate_params(name, params)
    key = _DROPOUT_KEY[name]
    if key is None:
        return p["dropout_conv"] > 0 or p["dropout_fc"] > 0
    return bool(key) and p[key] > 0


# -- factories (torch/MONAI imported lazily) -----------------------------------------------

def _small_cnn(p: dict):
    import torch.nn as nn

    c1, c2 = p["conv_channels"]
    side = (p["input_size"] - 4) // 2  # two valid 3x3 convs, then 2x2 max-pool
    if side < 1:
        raise ModelError("architecture 'small_cnn': input_size too small")
    return nn.Sequential(
        nn.Conv2d(p["in_channels"], c1, 3), nn.ReLU(),
        nn.Conv2d(c1, c2, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(p["dropout_conv"]), nn.Flatten(),
        nn.Linear(c2 * side * side, p["hidden"]), nn.ReLU(), nn.Dropout(p["dropout_fc"]),
        nn.Linear(p["hidden"], p["num_classes"]),
    )


def _monai_resnet18(p: dict):
    from monai.networks.nets import ResNet

    return ResNet(block="basic", layers=[2, 2, 2, 2], block_inplanes=p["block_inplanes"],
                  spatial_dims=p["spatial_dims"], n_input_channels=p["in_channels"],
                  conv1_t_size=p["conv1_size"], conv1_t_stride=p["conv1_stride"],
                  no_max_pool=p["no_max_pool"], widen_factor=p["widen_factor"],
                  num_classes=p["num_classes"])


def _monai_densenet121(p: dict):
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=p["spatial_dims"], in_channels=p["in_channels"],
                       out_channels=p["num_classes"], init_features=p["init_features"],
                       growth_rate=p["growth_rate"], dropout_prob=p["dropout_prob"])


def _monai_unet(p: dict):
    from medviewer.ai.unet import UNet  # MONAI's UNet, built without importing MONAI

    return UNet(spatial_dims=p["spatial_dims"], in_channels=p["in_channels"],
                out_channels=p["out_channels"], channels=p["channels"], strides=p["strides"],
                num_res_units=p["num_res_units"], norm=p["norm"], dropout=p["dropout"])


def _monai_basicunet(p: dict):
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=p["spatial_dims"], in_channels=p["in_channels"],
                     out_channels=p["out_channels"], features=tuple(p["features"]),
                     dropout=p["dropout"])


_FACTORIES: dict[str, Callable[[dict], Any]] = {
    "small_cnn": _small_cnn, "monai_resnet18": _monai_resnet18,
    "monai_densenet121": _monai_densenet121, "monai_unet": _monai_unet,
    "monai_basicunet": _monai_basicunet,
}
assert set(_FACTORIES) == set(_SCHEMAS)


def build(name: str, params: dict):
    """Build architecture ``name`` with checked ``params`` -> ``torch.nn.Module`` (train mode)."""
    checked = validate_params(name, params)
    try:
        return _FACTORIES[name](checked)
    except ModelError:
        raise
    except (ValueError, TypeError, AssertionError, RuntimeError) as exc:
        raise ModelError(f"architecture {name!r} cannot be built with these parameters: "
                         f"{exc}") from exc
