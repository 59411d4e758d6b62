"""Real model versions for the versions / gate / CLI tests: the built-in pneumonia-cxr 1.0.0
copied under a new version, its card changed and (optionally) its weights perturbed, with the
weights hash recomputed so the copy is a valid model folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from medviewer.ai.cards import file_sha256

REPO = Path(__file__).resolve().parents[3]
BUILTIN = REPO / "models"
NAME = "pneumonia-cxr"
BASE = BUILTIN / NAME / "1.0.0"


def make_version(user_dir: Path, version: str, parent: str = "1.0.0", noise: float = 0.0,
                 seed: int = 0, frozen_val=None, dest: Path | None = None) -> Path:
    """Copy pneumonia-cxr 1.0.0 to ``user_dir/pneumonia-cxr/<version>`` (or ``dest``) as
    ``version`` with parent ``parent``. ``noise`` > 0 adds seeded Gaussian noise (that fraction
    of each tensor's std) to every learned float tensor (not batch-norm statistics), and the
    card's sha256 is recomputed. Like a fine-tuned version, the copy keeps the base's
    histogram OOD statistics but not its feature statistics (they belong to the base's weights),
    nor the base's bf16 precision check (``precision.json``: it belongs to the base's weights).
    ``frozen_val``: an evaluate()-style dict stored as the card's metrics.frozen_val."""
    from safetensors.numpy import load_file, save_file

    folder = dest if dest is not None else Path(user_dir) / NAME / version
    shutil.copytree(BASE, folder, ignore=shutil.ignore_patterns("precision.json"))
    card = json.loads((folder / "model.json").read_text())
    wfile = folder / card["weights"]["file"]
    if noise > 0:
        rng = np.random.default_rng(seed)
        tensors = load_file(str(wfile))
        for key, arr in tensors.items():
            if arr.dtype.kind == "f" and arr.size > 1 and "running_" not in key:
                std = float(arr.std()) or 1.0
                tensors[key] = (arr + rng.normal(0, noise * std, arr.shape)).astype(arr.dtype)
        save_file(tensors, str(wfile))
    if card.get("ood", {}).get("features"):  # as a fine-tune writes it: no feature statistics
        from medviewer.ai.training.card_writer import inherited_ood

        (folder / card["ood"]["features"]["file"]).unlink()
        card["ood"] = inherited_ood(card["ood"])
    card.update(version=version, parent_version=parent,
                description=f"pneumonia-cxr {version}: a test copy of 1.0.0 (noise {noise})")
    card["weights"]["sha256"] = file_sha256(wfile)
    if frozen_val is not None:
        card["metrics"] = {"split": "frozen validation set", "frozen_val": frozen_val,
                           "accuracy": frozen_val.get("value")}
    (folder / "model.json").write_text(json.dumps(card, indent=1))
    return folder


def tamper(folder: Path) -> None:
    """Overwrite the last bytes of the weights: the card's hash no longer matches."""
    card = json.loads((folder / "model.json").read_text())
    with open(folder / card["weights"]["file"], "r+b") as fh:
        fh.seek(-16, 2)
        fh.write(b"\x7f" * 16)


def pneumonia_val(shared_data: Path, n: int = 200):
    """The first ``n`` PneumoniaMNIST validation images (uint8 28x28) and labels (0/1)."""
    data = np.load(shared_data / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz")
    return data["val_images"][:n], data["val_labels"][:n].reshape(-1).astype(np.int64)


SMALL = "pneumonia-cxr-smallcnn"
SMALL_BASE = BUILTIN / SMALL / "1.0.0"
#: how a version's weights can be broken, and a word the refusal must say for each
TAMPERED = {
    "flipped-bytes": "sha256",  # bytes changed after the card was written
    "truncated": "cannot be read",  # cut in half, hash recomputed
    "other-architecture": "do not fit architecture",  # resnet18 weights, hash recomputed
    "other-shapes": "shape mismatch",  # the same network with 64 hidden units, hash recomputed
    "nan-weights": "NaN output",  # one NaN in the first conv, hash recomputed
    "missing-file": "is missing",  # the weights file was deleted
    "card-names-missing-file": "is missing",  # the card names a file that is not there
    "pickled-module": "pickled Python objects",  # a whole torch module in a .pt, hash recomputed
}


def make_small_version(user_dir: Path, version: str, tampered: str | None = None) -> Path:
    """Copy pneumonia-cxr-smallcnn 1.0.0 to ``user_dir/pneumonia-cxr-smallcnn/<version>`` as
    ``version``; ``tampered`` (a key of :data:`TAMPERED`) breaks its weights that way."""
    from safetensors.numpy import load_file, save_file

    folder = Path(user_dir) / SMALL / version
    shutil.copytree(SMALL_BASE, folder, ignore=shutil.ignore_patterns("precision.json"))
    card = json.loads((folder / "model.json").read_text())
    if card.get("ood", {}).get("features"):  # the feature statistics belong to 1.0.0's weights
        from medviewer.ai.training.card_writer import inherited_ood

        (folder / card["ood"]["features"]["file"]).unlink()
        card["ood"] = inherited_ood(card["ood"])
    wfile = folder / card["weights"]["file"]
    recompute = True
    if tampered == "flipped-bytes":
        data = bytearray(wfile.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
        wfile.write_bytes(bytes(data))
        recompute = False
    elif tampered == "truncated":
        wfile.write_bytes(wfile.read_bytes()[: wfile.stat().st_size // 2])
    elif tampered == "other-architecture":
        shutil.copyfile(BASE / "weights.safetensors", wfile)
    elif tampered == "other-shapes":
        import torch
        from safetensors.torch import save_file as save_torch

        from medviewer.ai.architectures import build

        params = dict(card["architecture"]["params"], hidden=64)
        torch.manual_seed(0)
        module = build(card["architecture"]["name"], params)
        save_torch({k: v.contiguous() for k, v in module.state_dict().items()}, str(wfile))
    elif tampered == "nan-weights":
        tensors = load_file(str(wfile))
        key = next(k for k, v in tensors.items() if v.dtype.kind == "f" and v.ndim == 4)
        tensors[key] = tensors[key].copy()
        tensors[key].flat[0] = np.nan
        save_file(tensors, str(wfile))
    elif tampered == "missing-file":
        wfile.unlink()
        recompute = False
    elif tampered == "card-names-missing-file":
        card["weights"]["file"] = "weights-2.safetensors"
        recompute = False
    elif tampered == "pickled-module":
        import torch

        from medviewer.ai.architectures import build

        module = build(card["architecture"]["name"], card["architecture"]["params"])
        wfile.unlink()
        wfile = folder / "weights.pt"
        torch.save(module, str(wfile))  # the whole module: unpickling it runs code
        card["weights"]["file"] = wfile.name
    elif tampered is not None:
        raise ValueError(f"unknown tampering {tampered!r}")
    if recompute:
        card["weights"]["sha256"] = file_sha256(wfile)
    card.update(version=version, parent_version="1.0.0",
                description=f"{SMALL} {version}: a test copy of 1.0.0 ({tampered or 'intact'})")
    (folder / "model.json").write_text(json.dumps(card, indent=1))
    return folder
