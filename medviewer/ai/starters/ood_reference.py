"""Reference statistics of a starter model's training data for the OOD score, and its card's
domain: ``python -m medviewer.ai.starters ood-reference --out models/<name>/<version>``.

Runs the model on its training data exactly as inference prepares it (:mod:`medviewer.ai.ood`):
the mean input histogram and the Ledoit-Wolf feature statistics come from the TRAINING data;
each component's scale and the ``in_domain`` threshold are 99th percentiles on HELD-OUT
in-domain data (PneumoniaMNIST: the validation split, never the test split; CT organs: the
held-out slice blocks of both cases). Both CT sets are taken as they are and turned 180 degrees
(the model was trained on both). Writes ``ood_reference.safetensors`` and updates model.json's
``ood``, ``domain``, ``limits`` and description (plus README.md) atomically; the weights are
never touched. Deterministic: the same command gives the same files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medviewer.ai import ood
from medviewer.ai.cards import ModelCard, file_sha256
from medviewer.core.atomic import atomic_open, atomic_write_text

__all__ = ["REFERENCE_FILE", "PERCENTILE", "reference_stats", "write_reference", "card_texts"]

REFERENCE_FILE = "ood_reference.safetensors"
PERCENTILE = 99.0


def _pneumonia_sets(model, card) -> tuple:
    from medviewer.ai.starters.pneumonia import load_split

    out = []
    for split in ("train", "val"):
        images, _ = load_split(split)
        out.append(ood.sample_stats(model, card, ood.image_inputs(card, images), batch=256))
    data = {"reference": "PneumoniaMNIST train split (4708 images)",
            "calibration": "PneumoniaMNIST validation split (524 images); the test split is "
                           "not used"}
    return out[0], out[1], data


def _ct_sets(model, card) -> tuple:
    from medviewer.ai.starters import ct_data

    train, held = ([], []), ([], [])
    for case in ct_data.load_cases():
        for arr in (case.ct, np.ascontiguousarray(np.rot90(case.ct, 2, axes=(1, 2)))):
            for target, z in ((train, case.split(False)), (held, case.split(True))):
                h, f = ood.sample_stats(model, card, ood.volume_inputs(
                    card, arr, case.spacing_zyx, [int(v) for v in z]))
                target[0].append(h)
                target[1].append(f)
    cat = [(np.concatenate(h), np.concatenate(f)) for h, f in (train, held)]
    data = {"reference": "the 39 training slices of TotalSegmentator cases A and B, as they "
                         "are and turned 180 degrees (78 samples)",
            "calibration": "the held-out slice blocks (A z 15..21, B z 16..19), as they are and "
                           "turned 180 degrees (22 samples)"}
    return cat[0], cat[1], data


def _trunk_sets(model, card) -> tuple:
    from medviewer.ai.starters import trunk_data

    train, held = ([], []), ([], [])
    for case in trunk_data.load_cases():
        for target, z in ((train, case.split(False)), (held, case.split(True))):
            h, f = ood.sample_stats(model, card, ood.volume_inputs(
                card, case.ct, case.spacing_zyx, [int(v) for v in z]))
            target[0].append(h)
            target[1].append(f)
    cat = [(np.concatenate(h), np.concatenate(f)) for h, f in (train, held)]
    slabs = ", ".join(f"{k} z {a}..{b - 1}" for k, (a, b) in trunk_data.HOLDOUT.items())
    data = {"reference": "the training slices of the three trunk CT cases (A, B, C)",
            "calibration": f"the held-out slabs ({slabs})"}
    return cat[0], cat[1], data


def _starter(card) -> str:
    """Which starter trainer made this card: 'ct-trunk', 'ct-organs' or 'pneumonia'."""
    training = card.get("training", {}) if isinstance(card, dict) else card.training
    task = card.get("task") if isinstance(card, dict) else card.task
    if training.get("starter") == "ct-trunk":
        return "ct-trunk"
    return "ct-organs" if task == "segmentation" else "pneumonia"


def reference_stats(model, card) -> tuple:
    """(tensors for the safetensors file, the card's ``ood`` block without the file entry)."""
    sets = {"ct-trunk": _trunk_sets, "ct-organs": _ct_sets,
            "pneumonia": _pneumonia_sets}[_starter(card)]
    (h_tr, f_tr), (h_ca, f_ca), data = sets(model, card)
    hist_ref = h_tr.mean(0)
    mean, precision, shrink = ood.ledoit_wolf(f_tr)
    d_h = ood.hist_distance(h_ca, hist_ref)
    d_f = ood.mahalanobis(f_ca, mean, precision)
    scale = {"histogram": float(np.percentile(d_h, PERCENTILE)),
             "features": float(np.percentile(d_f, PERCENTILE))}
    combined = np.maximum(d_h / scale["histogram"], d_f / scale["features"])
    block = {
        "method": "ood_score = max(histogram W1 distance / its p99, feature Mahalanobis "
                  "distance / its p99) on the network input; median over up to "
                  f"{ood.MAX_SLICES} slices of a volume; in_domain when ood_score <= threshold",
        "histogram": {"bins": int(h_tr.shape[1]), "range": [0.0, 1.0],
                      "reference": [round(float(v), 6) for v in hist_ref]},
        "scale": {k: round(v, 6) for k, v in scale.items()},
        "threshold": round(float(np.percentile(combined, PERCENTILE)), 6),
        "calibration": {**data, "percentile": PERCENTILE, "n_reference": int(len(f_tr)),
                        "n_calibration": int(len(f_ca)), "ledoit_wolf_shrinkage":
                        round(shrink, 6), "command": "python -m medviewer.ai.starters "
                        "ood-reference --out <model folder>"},
    }
    tensors = {"mean": mean.astype(np.float32), "precision": precision.astype(np.float32)}
    return tensors, block, {"layer": _layer_name(card), "dim": int(f_tr.shape[1])}


def _layer_name(card) -> str:
    return {"monai_unet": "U-Net bottom block, global-average-pooled",
            "monai_resnet18": "ResNet global average pool (input of the classifier)",
            "small_cnn": "hidden fully-connected layer (after ReLU)"}.get(
        card.architecture["name"], "pooled features")


def card_texts(card_dict: dict) -> dict:
    """The starter's description, domain and limits for ``card_dict`` (by task)."""
    kind = _starter(card_dict)
    if kind == "ct-trunk":
        from medviewer.ai.starters import trunk_card as texts
    elif kind == "ct-organs":
        from medviewer.ai.starters import ct_card as texts
    else:
        from medviewer.ai.starters import pneumonia_card as texts
    return {"description": texts.DESCRIPTION, "domain": texts.DOMAIN,
            "limits": list(texts.LIMITS)}


def _readme(card_dict: dict) -> str:
    kind = _starter(card_dict)
    if kind == "ct-trunk":
        from medviewer.ai.starters.trunk_card import readme_text
    elif kind == "ct-organs":
        from medviewer.ai.starters.ct_card import readme_text
    else:
        from medviewer.ai.starters.pneumonia_card import readme_text
    return readme_text(card_dict)


def write_reference(folder, log=print) -> ModelCard:
    """Compute and write the OOD reference of the starter model in ``folder``; update its card."""
    import safetensors.numpy

    from medviewer.ai.registry import load_model

    folder = Path(folder)
    card = ModelCard.load(folder)
    model = load_model(card, device="cpu")
    tensors, block, feat_info = reference_stats(model, card)
    blob = safetensors.numpy.save(tensors, metadata={"model": card.ref})
    with atomic_open(folder / REFERENCE_FILE, "wb") as fh:
        fh.write(blob)
    block["features"] = {"file": REFERENCE_FILE, "sha256": file_sha256(folder / REFERENCE_FILE),
                         **feat_info}
    data = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    data.update(card_texts(data), ood=block)
    ModelCard.from_dict(data, folder)  # validate before writing
    atomic_write_text(folder / "model.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(folder / "README.md", _readme(data))
    written = ModelCard.load(folder)
    written.verify()
    log(f"{written.ref}: OOD reference written; scale {block['scale']}, threshold "
        f"{block['threshold']}")
    return written
