"""ModelCache: the one loaded model of the inference worker, kept until another is asked for."""
from __future__ import annotations

import threading
from typing import Callable, Optional

from .preprocess import card_ref

__all__ = ["ModelCache"]


class ModelCache:
    """One loaded model at a time, keyed by (card ref, device) and the card's folder (two
    workspaces may each hold a model of the same name and version); switching frees the
    old one.

    ``loader(card, device=...) -> nn.Module`` defaults to ``registry.load_model`` (weights
    hash-checked). Thread-safe; meant to be used from the single AI worker."""

    def __init__(self, loader: Optional[Callable] = None):
        self._loader = loader
        self._lock = threading.Lock()
        self._key: Optional[tuple] = None
        self._folder: Optional[str] = None  # where the cached model's card was read
        self._model = None

    @property
    def key(self) -> Optional[tuple]:
        """(card ref, device) of the cached model, or None."""
        return self._key

    def get(self, card, device: str = "cpu"):
        """The model for ``card`` on ``device`` (eval mode), loading it if it is not cached."""
        key = (card_ref(card), str(device))
        folder = str(getattr(card, "folder", None))  # the same name:version of another user
        with self._lock:
            if key == self._key and folder == self._folder and self._model is not None:
                return self._model
            self._free()
            loader = self._loader
            if loader is None:
                from .registry import load_model as loader
            model = loader(card, device=str(device))
            model.eval()
            self._model, self._key, self._folder = model, key, folder
            return model

    def clear(self) -> None:
        """Forget the cached model (frees its memory once nobody else holds it)."""
        with self._lock:
            self._free()

    def _free(self) -> None:
        old, self._model, self._key = self._model, None, None
        if old is not None:
            del old
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
