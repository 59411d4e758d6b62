"""Helpers for the AI UI tests: real images as Volumes, the AI controller of a window."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

REPO = Path(__file__).resolve().parents[2]
PNEUMONIA = REPO / ".." / "shared" / "data" / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz"
MODELS = REPO / "models"
CLS_MODEL = "pneumonia-cxr"


def pneumonia_volume(index: int, split: str = "test") -> tuple:
    """(Volume of one PneumoniaMNIST image (1, 28, 28) uint8, its true label 0/1)."""
    with np.load(PNEUMONIA) as d:
        img = np.array(d[f"{split}_images"][index])
        label = int(d[f"{split}_labels"][index, 0])
    geo = Geometry(shape=(1,) + img.shape, spacing=(1.0, 1.0, 1.0))
    vol = Volume(img[None], geo, modality="DX", description=f"PneumoniaMNIST {split} {index}",
                 meta={"orientation_known": False})
    return vol, label


def open_ready(qtbot, window, volume):
    """Add ``volume`` and wait until the annotation controller knows its hash."""
    window.session.add_volume(volume)
    ctl = window.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    return ctl.state


def seg_model_refs(window) -> list:
    return [c.ref for c in window.ai.ctl.cards if c.task == "segmentation"]


def isolate_user_models(tmp_path, monkeypatch) -> None:
    """Models come from the repo's models/ (and MEDVIEWER_MODELS when the caller set it),
    never from the user's home folder."""
    import os

    if not os.environ.get("MEDVIEWER_MODELS"):
        monkeypatch.setenv("MEDVIEWER_MODELS", str(tmp_path / "user-models"))


def segmentation_cards() -> list:
    from medviewer.ai.registry import ModelRegistry

    return [c for c in ModelRegistry().list() if c.task == "segmentation"]


def wait_until(condition, timeout_ms: int = 120000) -> bool:
    """Wait for ``condition()`` in a real QEventLoop (polled every 20 ms). Unlike
    qtbot.waitUntil / QTest.qWait, the loop releases the GIL while idle, so the AI worker
    thread runs at full speed. Raises TimeoutError when it is not met in time."""
    from medviewer.ui.stall_probe import run_until

    if not run_until(condition, timeout_ms):
        raise TimeoutError(f"condition not met within {timeout_ms} ms")
    return True


# shared fixtures of the AI UI tests (import them into a test module to use them)
@pytest.fixture(autouse=True)
def models_isolated(tmp_path, monkeypatch):
    isolate_user_models(tmp_path, monkeypatch)


@pytest.fixture
def seg_card(models_isolated):
    cards = segmentation_cards()
    if not cards:
        pytest.fail("the built-in segmentation model is missing from models/")
    return cards[-1]
