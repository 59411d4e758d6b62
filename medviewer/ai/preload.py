"""Importing the AI libraries ahead of the first job (torch, MONAI's networks and inferers,
and the inference module), so that one-off cost is paid while the app is idle."""
from __future__ import annotations


def import_libraries() -> None:
    """Import torch, MONAI and :mod:`medviewer.ai.inference` (ImportError if they are missing)."""
    import monai.inferers  # noqa: F401  (segmentation's sliding window)
    import monai.networks.nets  # noqa: F401
    import torch  # noqa: F401

    from . import inference  # noqa: F401
