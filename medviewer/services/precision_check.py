"""The bf16 agreement check of a model on real data, recorded beside its card
(``precision.json``, read by :func:`medviewer.ai.precision.choose`).

Segmentation models run on the demo chest CT (``../shared/data/tcia_cmb_crc_ct_chest``, 100
slices 512x512) through the same ``segment`` as the app and ``predict``, once in fp32 and once
in bf16 autocast; the labels must agree on >= 99.9 % of the voxels (and bf16 must be faster)
for bf16 to be used on CPUs with native bf16. Classification models: the predicted classes of
the PneumoniaMNIST validation images (never the test split). ``medviewer models
check-precision NAME[:VERSION]`` runs it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["default_data", "check_precision"]

_REPO = Path(__file__).resolve().parents[2]


def _shared_data() -> Path:
    return Path(os.environ.get("MEDVIEWER_SHARED_DATA", _REPO.parent / "shared" / "data"))


def default_data(task: str) -> Path:
    """The real data a ``task``'s check runs on by default."""
    if task == "segmentation":
        return _shared_data() / "tcia_cmb_crc_ct_chest"
    return _shared_data() / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz"


def _labels_run(card, data: Path, model, reporter):
    """(precision -> labels, description of the data) for ``card``'s task."""
    from medviewer.ai.inference import classify, segment
    from medviewer.jobs import drive

    if card.task == "segmentation":
        from medviewer.io.load import open_first

        vol = open_first([data], reporter)
        sx, sy, sz = vol.geometry.spacing

        def run(precision: str) -> np.ndarray:
            gen = segment(model, card, vol.array, (sz, sy, sx), "cpu", want_entropy=False,
                          precision=precision)
            return drive(gen, reporter).labels

        return run, f"{data.name}: {vol.shape[0]} slices {vol.shape[1]}x{vol.shape[2]}"
    if card.task == "classification":
        images = np.load(data)["val_images"]

        def run_cls(precision: str) -> np.ndarray:
            names = list(card.labels)
            return np.array([names.index(drive(classify(model, card, im, "cpu",
                                                        precision=precision)).label)
                             for im in images])

        return run_cls, f"{data.name}: {len(images)} validation images"
    raise ValueError(f"no precision check for {card.task!r} models")


def check_precision(card, data: Optional[Path] = None, write: bool = True,
                    reporter=None) -> dict:
    """Run the check of ``card``'s model on the CPU; write the record when ``write``."""
    from medviewer.ai.device import configure_threads
    from medviewer.ai.precision import compare, write_record
    from medviewer.ai.registry import load_model

    data = Path(data) if data is not None else default_data(card.task)
    if not data.exists():
        raise FileNotFoundError(f"check data {data} is not there")
    configure_threads(None)
    model = load_model(card, "cpu")
    run, described = _labels_run(card, data, model, reporter)
    result = compare(run, described)
    result["model"] = card.ref
    if write:
        result["record"] = str(write_record(card, result))
    return result
