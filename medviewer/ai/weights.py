"""Weights files: build a card's network and load its verified weights; save trained weights.

Weights are ``.safetensors`` (plain tensors, no code) or, as a fallback, a state_dict read with
``torch.load(..., weights_only=True)``. A file that holds anything else (a pickled module,
code) is refused with MedViewer's own message: torch's advice to load it with weights_only off
is never passed on, since that runs code from the file. :func:`check_runs` is what promote and
rollback ask of a version before the pointer moves. torch is imported when these functions run,
never at import time of this module.
"""
from __future__ import annotations

import re
from pathlib import Path

from medviewer.ai.architectures import TORCH_ONLY, ModelError, build
from medviewer.ai.cards import ModelCard, file_sha256

__all__ = ["load_model", "save_weights", "check_output_size", "read_state_dict", "check_runs"]

_PICKLED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


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
    except Exception as exc:  # corrupt/unsupported file: say so plainly, in our words
        raise _unreadable(path, exc) from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelError(f"weights file {path.name} does not hold a state_dict of tensors")
    return state


def _unreadable(path: Path, exc: Exception) -> ModelError:
    """The error for a weights file that cannot be read. torch's text on a refused pickle
    advises turning weights_only off (running the file's code): it is not repeated."""
    text = str(exc)
    if "weights_only" in text or type(exc).__name__ == "UnpicklingError":
        found = _PICKLED_GLOBAL.search(text)
        what = f" (it needs {found.group(1)})" if found else ""
        return ModelError(f"weights file {path.name} holds pickled Python objects{what}, not a "
                          f"plain state_dict of tensors; MedViewer never runs code from a "
                          f"weights file: save the network's state_dict as .safetensors")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = first.split(". ")[0].rstrip(".")[:200]
    return ModelError(f"weights file {path.name} cannot be read (truncated or not a weights "
                      f"file): {first}")


def _dummy_input(card: ModelCard):
    """One small input of the card's shape: seeded standard-normal values (a zero image can
    hide weights that break only on real values)."""
    import torch

    spec = card.input
    shape = spec["size"] if "size" in spec else spec["patch"]
    gen = torch.Generator().manual_seed(0)
    return torch.randn((1, spec["channels"], *shape), generator=gen, dtype=torch.float32)


def _non_finite_tensor(model) -> str:
    """The first parameter or buffer holding NaN/inf, as text for a message ('' if none)."""
    import torch

    for key, value in model.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return f" (first non-finite tensor: {key})"
    return ""


def check_output_size(card: ModelCard, model) -> None:
    """Run one small input of the card's shape through ``model``: ModelError unless it runs,
    gives one channel per label (len(card.labels)) and only finite values."""
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
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        raise ModelError(f"{card.ref}: NaN output — {bad} of {out.numel()} output values on a "
                         f"test input are NaN or inf{_non_finite_tensor(model)}")


def check_runs(card: ModelCard) -> None:
    """What a version must pass before it becomes active: its weights file exists and matches
    the card's sha256, reads as plain tensors, loads strictly into the card's architecture,
    and one small input of the card's shape gives a finite output with one channel per label.
    ModelError saying which of these failed."""
    check_output_size(card, load_model(card, device="cpu", verify=True))


def _misfit(model, state: dict, exc: Exception) -> str:
    """Which tensors of ``state`` do not fit ``model``, in a few words (torch's own text lists
    every key on one line)."""
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shapes = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {len(want)} tensors missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected tensors (e.g. {extra[0]})")
    if shapes:
        k = shapes[0]
        parts.append(f"shape mismatch in {len(shapes)} tensors (e.g. {k}: "
                     f"{list(state[k].shape)} in the file, {list(want[k].shape)} in the network)")
    return "; ".join(parts) or str(exc).strip().splitlines()[0][:200]


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
        raise ModelError(f"{card.ref}: weights do not fit architecture "
                         f"{card.architecture['name']!r}: {_misfit(model, state, exc)}") from None
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
