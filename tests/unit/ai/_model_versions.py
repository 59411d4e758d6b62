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
