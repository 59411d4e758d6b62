"""Weights files: build a card's network and load its verified weights; save trained weights.

Weights are ``.safetensors`` (plain tensors, no code) or, as a fallback, a state_dict read with
``torch.load(..., weights_only=True)``. torch is imported when these functions run, never at
import time of this module.
"""
from __future__ import annotations

from pathlib import Path

from medviewer.ai.architectures import TORCH_ONLY, ModelError, build
from medviewer.ai.cards import ModelCard, file_sha256

__all__ = ["load_model", "save_weights", "check_output_size", "read_state_dict"]


def read_state_dict(path: Path) -> dict:
    """Tensors of a weights file (safetensors, or a weights_only torch state_dict)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except ModelError:
        raise
    except Exception as exc:  # corrupt/unsupported file: say so plainly
        raise ModelError(f"weights file {path.name} cannot be read: {exc}") from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelError(f"weights file {path.name} does not hold a state_dict of tensors")
    return state


def _dummy_input(card: ModelCard):
    import torch

    spec = card.input
    shape = spec["size"] if "size" in spec else spec["patch"]
    return torch.zeros((1, spec["channels"], *shape), dtype=torch.float32)


def check_output_size(card: ModelCard, model) -> None:
    """Run one zero input through ``model``; its channel count must equal len(card.labels)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(_dummy_input(card))
    except Exception as exc:
        raise ModelError(f"{card.ref}: the network does not accept the card's input "
                         f"spec ({exc})") from None
    finally:
        model.train(was_training)
    if out.ndim < 2 or out.shape[1] != len(card.labels):
        raise ModelError(f"{card.ref}: the network gives {tuple(out.shape)[1:2]} outputs but the "
                         f"card lists {len(card.labels)} labels")


def load_model(card: ModelCard, device: str = "cpu", verify: bool = True):
    """Build the card's network, load its weights (hash-checked) -> eval-mode module on device."""
    from medviewer.ai.preload import import_libraries

    import_libraries()
    if card.architecture["name"] not in TORCH_ONLY:
        from medviewer.ai.preload import import_monai

        import_monai()  # never two threads importing MONAI at once
    if verify:
        card.verify()
    model = build(card.architecture["name"], card.architecture["params"])
    state = read_state_dict(card.weights_path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:3]
        raise ModelError(f"{card.ref}: weights do not fit architecture "
                         f"{card.architecture['name']!r}: {' '.join(first)}") from None
    model.eval()
    return model.to(device)


def save_weights(model, path: Path) -> str:
    """Write ``model``'s state_dict as safetensors atomically; return the file's sha256."""
    from safetensors.torch import save_file

    from medviewer.core.atomic import atomic_path

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))
    return file_sha256(path)
