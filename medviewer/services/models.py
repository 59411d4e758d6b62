"""The model catalogue shared by the app and ``medviewer models``: which models and versions
there are (built in and user), which version is active, their headline metrics, importing a
model folder, making a new model for a person's own task (:mod:`medviewer.ai.new_model`),
promoting and rolling back. Wraps :mod:`medviewer.ai.registry` and :mod:`medviewer.ai.versions`
(neither imports torch at module level).

A new model's first version is untrained: it is listed (and fine-tuned from) but never
offered for automatic runs, and :func:`require_automatic` refuses it with the command that
trains it."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

__all__ = ["ModelCatalog", "metric_text", "ModelError", "require_automatic", "is_automatic",
           "NewModelOptions", "parse_labels", "FAMILIES", "DEFAULT_SIZE"]

from medviewer.ai.architectures import ModelError  # noqa: E402  (no torch at import)
from medviewer.ai.new_model import (DEFAULT_SIZE, FAMILIES, NewModelOptions,  # noqa: E402
                                    parse_labels)  # (no torch at import)


class ModelCatalog:
    """One view of the model folders; :meth:`reload` re-reads them (after an import, a
    fine-tune or a change of the active pointer)."""

    def __init__(self, user_dir=None, builtin_dir=None):
        self._user_dir, self._builtin_dir = user_dir, builtin_dir
        self.registry = None
        self.reload()

    def reload(self) -> "ModelCatalog":
        from medviewer.ai.registry import ModelRegistry

        self.registry = ModelRegistry(builtin_dir=self._builtin_dir, user_dir=self._user_dir)
        return self

    # ------------------------------------------------------------------ reading
    @property
    def user_dir(self) -> Path:
        return self.registry.user_dir

    @property
    def builtin_dir(self) -> Path:
        return self.registry.builtin_dir

    @property
    def problems(self) -> list:
        """(folder, reason) of every model folder the last listing refused."""
        return list(self.registry.problems)

    def list(self) -> list:
        return self.registry.list()

    def automatic(self) -> list:
        """The models the automatic AI runs offer (classification, segmentation): not the
        promptable model (task "interactive"), which runs from the Prompt tool only, and no
        untrained version of a new model."""
        return [c for c in self.list() if is_automatic(c)]

    def get(self, ref: str):
        """The card of ``name`` (its active version) or ``name:version``; ModelError if none."""
        return self.registry.get(ref)

    def is_builtin(self, card) -> bool:
        return self.registry.is_builtin(card)

    def dims(self, name: str) -> Optional[int]:
        """2 or 3 for a known model (its active version), None for an unknown one."""
        try:
            return int(self.get(name).input.get("dims"))
        except (ModelError, TypeError, ValueError):
            return None

    def active_version(self, name: str) -> Optional[str]:
        """The version the pointer names (None: no pointer, the highest built-in is used)."""
        from medviewer.ai.versions import active_version

        return active_version(self.registry, name)

    def active_refs(self, cards=None) -> Dict[str, str]:
        """{name: "name:version"} of each model's active version."""
        from medviewer.ai.versions import active_refs

        return active_refs(self.registry, cards)

    def history(self, name: str) -> list:
        from medviewer.ai.versions import history

        return history(self.registry, name)

    def versions(self, name: str) -> List[dict]:
        """One row per version of ``name`` (ValueError if there is none): version, parent,
        active, headline metric (name, value, split), the parent's value on the same frozen
        validation set, built-in or user, and its report file."""
        from medviewer.ai.versions import headline_metric, parent_on_same_val

        cards = [c for c in self.list() if c.name == name]
        if not cards:
            raise ValueError(f"no model named {name!r}")
        active = self.active_version(name) or self.get(name).version
        rows = []
        for c in cards:
            vm = headline_metric(c)
            report = c.folder / "report.md" if c.folder is not None else None
            rows.append({"version": c.version, "parent": c.parent_version,
                         "active": c.version == active,
                         "metric": vm[0] if vm else None, "value": vm[1] if vm else None,
                         "split": vm[2] if vm else None,
                         "parent_on_same_val": parent_on_same_val(c),
                         "source": "built-in" if self.is_builtin(c) else "user",
                         "untrained": c.untrained,
                         "report": str(report) if report is not None and report.is_file() else None})
        return rows

    def record(self, card) -> dict:
        """What ``medviewer models`` shows of a card."""
        shown = {k: v for k, v in card.metrics.items() if isinstance(v, (int, float))
                 and not isinstance(v, bool) and k != "n"}
        return {"name": card.name, "version": card.version, "ref": card.ref, "task": card.task,
                "labels": list(card.labels), "metrics": shown,
                "architecture": card.architecture["name"], "folder": str(card.folder),
                "source": "built-in" if self.is_builtin(card) else "user",
                "untrained": card.untrained}

    # ------------------------------------------------------------------ changing
    def import_folder(self, path):
        """Validate a model folder (builds the network: torch) and copy it into the user
        folder; returns its card. ModelError/OSError say why not."""
        card = self.registry.import_folder(path)
        self.reload()
        return card

    def check_new(self, options: NewModelOptions) -> dict:
        """The card a new model would get (no torch); ModelError names a bad option."""
        from medviewer.ai.new_model import card_for_new_model

        return card_for_new_model(options, self.registry)[0]

    def create(self, options: NewModelOptions) -> tuple:
        """Make a new model's untrained first version in the user folder (see
        :mod:`medviewer.ai.new_model`; builds the network: torch); (its card, the report of the
        weight tensors copied from the base / skipped). ModelError says why not."""
        from medviewer.ai.new_model import create_model

        try:
            return create_model(self.registry, options)
        finally:
            self.reload()

    def promote(self, name: str, version: str, reason: str = "") -> str:
        from medviewer.ai.versions import promote
        from medviewer.services.interactive import active_version_changed

        promote(self.registry, name, version, reason=reason)
        active_version_changed(name)
        return version

    def rollback(self, name: str, version: Optional[str] = None, reason: str = "") -> str:
        """Back to ``version`` (default: the previously active one); returns the version."""
        from medviewer.ai.versions import rollback
        from medviewer.services.interactive import active_version_changed

        version = rollback(self.registry, name, version, reason=reason)
        active_version_changed(name)
        return version


def metric_text(card) -> str:
    """The metric a version is judged by (a fine-tuned version: on the frozen validation set,
    with its parent's value on the same set), else the card's headline metric and split."""
    from medviewer.ai.versions import headline_metric, parent_on_same_val

    hm = headline_metric(card)
    if hm is None:
        return "—"
    metric, value, split = hm
    text = f"{metric} {value:.3f}" + (f" ({split})" if split else "")
    base = parent_on_same_val(card)
    return text + (f"; parent {base:.3f}" if base is not None else "")


def is_automatic(card) -> bool:
    """Whether ``card``'s model runs on its own on an image (not from prompts) and was
    trained (a new model's untrained version is not)."""
    from medviewer.ai.cards import AUTOMATIC_TASKS

    return (getattr(card, "task", None) in AUTOMATIC_TASKS
            and not getattr(card, "untrained", False))


def require_automatic(card) -> None:
    """ModelError unless ``card``'s model can run automatically (``predict``, the AI panel):
    not the promptable model, not an untrained version."""
    if getattr(card, "untrained", False):
        from medviewer.ai.versions import untrained_error

        raise untrained_error(card)
    if not is_automatic(card):
        raise ModelError(f"{card.ref} is an interactive (promptable) model: it segments what "
                         "you point at, from clicks, boxes or scribbles; use the Prompt tool "
                         "or `medviewer prompt --engine learned`, not an automatic run")
