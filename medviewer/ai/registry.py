"""Model registry: built-in models (repo ``models/``) plus a user models folder; import folders.

Layout of both roots: ``<root>/<name>/<version>/model.json`` (+ weights + README.md); hidden
folders (``.staging-*``, imports in progress) are ignored. The user folder is
``$MEDVIEWER_MODELS`` or ``~/MedViewer-models``; it also holds each model's active-version
pointer (:mod:`medviewer.ai.versions`), which :meth:`ModelRegistry.get` follows. Importing
validates the card, the weights hash, that the architecture builds, accepts the input spec and
gives one output per label, then copies the folder atomically to ``<user>/<name>/<version>/``;
an existing version is never overwritten. No torch import at module level (only
:meth:`import_folder` and :func:`load_model` need it).
"""
from __future__ import annotations

import importlib.resources
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from medviewer.ai.architectures import ModelError
from medviewer.ai.cards import CARD_FILE, ModelCard, parse_version
from medviewer.ai.versions import POINTER_FILE, read_pointer

__all__ = ["ModelRegistry", "ModelError", "load_model", "builtin_models_dir",
           "default_user_dir", "split_ref"]


def _find_builtin_dir() -> Path:
    """``medviewer/builtin_models`` of an installed package (the wheel ships the repo's
    ``models/`` there), else ``<checkout>/models`` (source tree or editable install)."""
    shipped = Path(str(importlib.resources.files("medviewer") / "builtin_models"))
    checkout = Path(__file__).resolve().parents[2]
    if not shipped.is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "models"
    return shipped


BUILTIN_DIR = _find_builtin_dir()


def builtin_models_dir() -> Path:
    return BUILTIN_DIR


def default_user_dir() -> Path:
    env = os.environ.get("MEDVIEWER_MODELS")
    return Path(env).expanduser() if env else Path.home() / "MedViewer-models"


def split_ref(ref: str) -> tuple[str, Optional[str]]:
    """``"name"`` -> (name, None); ``"name:1.2.0"`` -> (name, "1.2.0")."""
    if not isinstance(ref, str) or not ref.strip():
        raise ModelError("a model reference must be 'name' or 'name:version'")
    name, _, version = ref.strip().partition(":")
    if version:
        parse_version(version)
    return name, (version or None)


def load_model(card: ModelCard, device: str = "cpu", verify: bool = True):
    """Build ``card``'s network with its (hash-checked) weights, eval mode, on ``device``."""
    from medviewer.ai.weights import load_model as _load

    return _load(card, device=device, verify=verify)


class ModelRegistry:
    """All models found under the built-in and user roots (re-scanned on every call)."""

    def __init__(self, builtin_dir=None, user_dir=None):
        self.builtin_dir = Path(builtin_dir) if builtin_dir is not None else BUILTIN_DIR
        self.user_dir = Path(user_dir) if user_dir is not None else default_user_dir()
        #: (folder, message) for every folder with a model.json that was refused by list()
        self.problems: list[tuple[Path, str]] = []

    def _scan(self, root: Path) -> list[ModelCard]:
        cards = []
        if not root.is_dir():
            return cards
        for card_path in sorted(root.glob(f"*/*/{CARD_FILE}")):
            folder = card_path.parent
            if folder.name.startswith(".") or folder.parent.name.startswith("."):
                continue  # an import or a fine-tuning run in progress (staging), or hidden
            try:
                card = ModelCard.load(folder)
                if (card.name, card.version) != (folder.parent.name, folder.name):
                    raise ModelError(f"{folder}: card says {card.ref} but the folder is "
                                     f"{folder.parent.name}/{folder.name}")
            except ModelError as exc:
                self.problems.append((folder, str(exc)))
                continue
            cards.append(card)
        return cards

    def list(self) -> list[ModelCard]:
        """Valid cards sorted by name then version; built-in wins over a user copy of the same
        name:version. Refused folders are recorded in :attr:`problems`."""
        self.problems = []
        found: dict[tuple[str, str], ModelCard] = {}
        for root in (self.user_dir, self.builtin_dir):
            for card in self._scan(root):
                found[(card.name, card.version)] = card  # built-in scanned last: wins
        return sorted(found.values(), key=lambda c: (c.name, c.version_key))

    def is_builtin(self, card: ModelCard) -> bool:
        try:
            return card.folder is not None and card.folder.resolve().is_relative_to(
                self.builtin_dir.resolve())
        except OSError:
            return False

    def get(self, ref: str) -> ModelCard:
        """``"name:version"`` -> its card; ``"name"`` -> the ACTIVE version (the pointer file
        ``<user_dir>/<name>/active.json``, see :mod:`medviewer.ai.versions`), without a usable
        pointer the highest built-in version, else the highest. ModelError if absent."""
        name, version = split_ref(ref)
        everything = self.list()
        cards = [c for c in everything if c.name == name]
        if not cards:
            known = sorted({c.name for c in everything})
            raise ModelError(f"no model named {name!r}; available: {', '.join(known) or 'none'}")
        if version is None:
            return self._default_card(name, cards)
        for card in cards:
            if card.version_key == parse_version(version):
                return card
        raise ModelError(f"model {name!r} has no version {version}; available: "
                         f"{', '.join(c.version for c in cards)}")

    def _default_card(self, name: str, cards: list) -> ModelCard:
        pointed = read_pointer(self.user_dir, name).get("version")
        if pointed is not None:
            for card in cards:
                if card.version == pointed:
                    return card
            self.problems.append((self.user_dir / name / POINTER_FILE,
                                  f"{name}: the active version {pointed} does not exist; "
                                  f"using the default version"))
        builtin = [c for c in cards if self.is_builtin(c)]
        return (builtin or cards)[-1]

    def import_folder(self, path) -> ModelCard:
        """Validate the model folder at ``path`` and copy it into the user folder.

        Refuses (ModelError) a bad card, a weights hash mismatch, an architecture that does not
        build or fit the labels, and a name:version that already exists."""
        src = Path(path)
        card = ModelCard.load(src)
        card.verify()
        self._check_network(card)
        existing = [c for c in self.list() if (c.name, c.version) == (card.name, card.version)]
        target = self.user_dir / card.name / card.version
        if existing or target.exists():
            where = existing[0].folder if existing else target
            raise ModelError(f"{card.ref} already exists ({where}); a model version is never "
                             f"overwritten: give the new one another version")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{card.version}.", suffix=".tmp",
                                    dir=target.parent))
        try:
            ood_file = card.ood_features_path
            extra = (ood_file.name,) if ood_file is not None else ()
            for name in (CARD_FILE, card.weights["file"], "README.md") + extra:
                if (src / name).is_file():
                    shutil.copy2(src / name, tmp / name)
            copied = ModelCard.load(tmp)
            copied.verify()
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, target)  # atomic; fails if target appeared meanwhile
            except OSError:
                if not target.exists():
                    raise
                raise ModelError(f"{card.ref} appeared in {target.parent} while importing "
                                 f"(a fine-tune committed it); a model version is never "
                                 f"overwritten: give the new one another version") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return ModelCard.load(target)

    @staticmethod
    def _check_network(card: ModelCard) -> None:
        from medviewer.ai.weights import check_output_size, load_model as _load

        model = _load(card, device="cpu", verify=False)
        check_output_size(card, model)
