"""The store's records as a tree (parent -> children), read once, for the queue and effort views."""
from __future__ import annotations

from typing import Optional

from medviewer.storage.store import LabelStore, Record

REVIEW_TAGS = ("corrected", "final")


def model_matches(record: Record, model: Optional[str]) -> bool:
    """True for a model-made record of ``model`` ('name' = any version, 'name:version')."""
    if record.source.kind != "model":
        return False
    if model is None:
        return True
    name, _, version = str(model).partition(":")
    return record.source.name == name and (not version or record.source.version == version)


def model_ref(record: Record) -> str:
    return f"{record.source.name}:{record.source.version}"


class RecordTree:
    """Every record of a store (oldest first) with a children index."""

    def __init__(self, store: LabelStore):
        self.records = store.records()
        self.by_id = {r.id: r for r in self.records}
        self.children: dict = {}
        for r in self.records:
            if r.parent_id is not None:
                self.children.setdefault(r.parent_id, []).append(r)

    def descendants(self, record_id: str) -> list:
        """All records below ``record_id``, oldest first."""
        out, todo = [], [record_id]
        while todo:
            for child in self.children.get(todo.pop(), ()):
                out.append(child)
                todo.append(child.id)
        order = {r.id: i for i, r in enumerate(self.records)}
        return sorted(out, key=lambda r: order[r.id])

    def predictions(self, model: Optional[str] = None) -> list:
        """'predicted' model records (of ``model`` when given), oldest first."""
        return [r for r in self.records if r.tag == "predicted" and model_matches(r, model)]

    def reviews_below(self, record_id: str) -> list:
        """The corrected/final records below a prediction, oldest first."""
        return [r for r in self.descendants(record_id) if r.tag in REVIEW_TAGS]
