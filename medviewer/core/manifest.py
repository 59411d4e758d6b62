"""Training manifest: which image files and labels a fine-tuning run trains and validates on.

A manifest is a JSON file that storage writes (from the label store's corrected and final
records) and training reads. Paths inside it are relative to its ``root`` (itself relative to
the manifest file's folder), and every file carries its sha256 so a run can prove what it saw.

A segmentation target may list the ``classes`` present in its slices (the builder writes
them; the validation-size check reads them). Entries are split into ``train`` and ``val`` by
*units* (see :func:`split_unit`): a whole image
for classification and 3D models, a slab of 8 axial slices for 2D segmentation models, so
neighbouring slices never sit on both sides of the split. Pure Python + hashlib: no numpy,
torch or nibabel here.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional

from medviewer.core.atomic import atomic_write_text

MANIFEST_VERSION = 1
TASKS = ("segmentation", "classification")
SPLITS = ("train", "val")
ENTRY_TAGS = ("corrected", "final")
SLAB = 8
_CHUNK = 4 * 2**20


def split_unit(image_hash: str, z: Optional[int] = None, slab: int = SLAB) -> str:
    """The split unit of an image (``z`` None) or of the slab of ``slab`` slices holding ``z``."""
    if not image_hash or ":" in image_hash:
        raise ValueError("split_unit needs a plain image hash")
    if z is None:
        return image_hash
    if int(z) < 0 or int(slab) < 1:
        raise ValueError(f"bad slice {z} / slab {slab}")
    return f"{image_hash}:z{int(z) // int(slab)}"


def unit_image_hash(unit: str) -> str:
    """The image hash a split unit belongs to."""
    return str(unit).split(":", 1)[0]


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _need(d: dict, key: str, types, where: str):
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a JSON object")
    if key not in d:
        raise ValueError(f"{where} lacks {key!r}")
    value = d[key]
    if not isinstance(value, types) or (isinstance(value, bool) and types is int):
        raise ValueError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _check_rel(rel: str, where: str) -> str:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel:
        raise ValueError(f"{where}: {rel!r} must be a relative path inside the manifest root")
    return rel


def _check_sha(value: str, where: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{where}: not a sha256 hex digest")
    return value


def _check_target(task: str, target: dict, labels: list, where: str) -> dict:
    if task == "segmentation":
        _check_rel(_need(target, "labels", str, where), where)
        _check_sha(_need(target, "labels_sha256", str, where), where)
        slices = _need(target, "slices", list, where)
        if not slices or any(isinstance(z, bool) or not isinstance(z, int) or z < 0
                             for z in slices):
            raise ValueError(f"{where}: 'slices' must be a non-empty list of slice indices")
        values = _need(target, "label_values", dict, where)
        for name, v in values.items():
            if name not in labels:
                raise ValueError(f"{where}: label {name!r} is not one of the model's labels")
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{where}: label value for {name!r} must be an integer >= 0")
        classes = target.get("classes")
        if classes is not None and (not isinstance(classes, list) or
                                    any(c not in labels for c in classes)):
            raise ValueError(f"{where}: 'classes' must list labels of the model")
    else:
        cls = _need(target, "class", str, where)
        if cls not in labels:
            raise ValueError(f"{where}: class {cls!r} is not one of the model's labels")
        z = _need(target, "slice", int, where)
        if z < 0:
            raise ValueError(f"{where}: 'slice' must be >= 0")
    return target


@dataclass(frozen=True)
class ManifestEntry:
    """One training/validation item: an image snapshot, its target and where both came from."""

    unit: str
    split: str
    image: str
    image_sha256: str
    image_hash: str
    image_meta: dict
    tag: str
    record_id: str
    parent_record_id: Optional[str]
    predicted_by: Optional[str]
    target: dict

    def to_dict(self) -> dict:
        return {"unit": self.unit, "split": self.split, "image": self.image,
                "image_sha256": self.image_sha256, "image_hash": self.image_hash,
                "image_meta": self.image_meta, "tag": self.tag, "record_id": self.record_id,
                "parent_record_id": self.parent_record_id, "predicted_by": self.predicted_by,
                "target": self.target}

    @classmethod
    def from_dict(cls, d: dict, task: str, labels: list, where: str = "entry") -> "ManifestEntry":
        split = _need(d, "split", str, where)
        if split not in SPLITS:
            raise ValueError(f"{where}: split must be one of {SPLITS}, got {split!r}")
        tag = _need(d, "tag", str, where)
        if tag not in ENTRY_TAGS:
            raise ValueError(f"{where}: tag must be one of {ENTRY_TAGS}, got {tag!r}")
        parent = d.get("parent_record_id")
        predicted_by = d.get("predicted_by")
        for key, value in (("parent_record_id", parent), ("predicted_by", predicted_by)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{where}: {key!r} must be a string or null")
        meta = _need(d, "image_meta", dict, where)
        return cls(unit=_need(d, "unit", str, where), split=split,
                   image=_check_rel(_need(d, "image", str, where), where),
                   image_sha256=_check_sha(_need(d, "image_sha256", str, where), where),
                   image_hash=_need(d, "image_hash", str, where), image_meta=dict(meta),
                   tag=tag, record_id=_need(d, "record_id", str, where),
                   parent_record_id=parent, predicted_by=predicted_by,
                   target=dict(_check_target(task, _need(d, "target", dict, where), labels,
                                             where)))


@dataclass(frozen=True)
class Manifest:
    """A model's training set: entries (train + frozen val) with files relative to ``root``."""

    model: str
    task: str
    labels: list
    entries: list
    root: str = "."
    created_at: str = ""
    version: int = MANIFEST_VERSION
    root_dir: Optional[Path] = field(default=None, compare=False, repr=False)
    path: Optional[Path] = field(default=None, compare=False, repr=False)  # file it was loaded from

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"manifest task must be one of {TASKS}, got {self.task!r}")
        if self.root_dir is None:
            object.__setattr__(self, "root_dir", Path(self.root).resolve())

    # ------------------------------------------------------------------ (de)serialising
    def to_dict(self) -> dict:
        return {"version": self.version, "model": self.model, "task": self.task,
                "labels": list(self.labels), "root": self.root,
                "created_at": self.created_at,
                "entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, d: dict, root_dir: Optional[Path] = None) -> "Manifest":
        if not isinstance(d, dict):
            raise ValueError("a manifest must be a JSON object")
        version = d.get("version", MANIFEST_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"manifest version must be a positive integer, got {version!r}")
        if version > MANIFEST_VERSION:
            raise ValueError(f"manifest version {version} is newer than this app "
                             f"({MANIFEST_VERSION})")
        model = _need(d, "model", str, "manifest")
        if not model.strip():
            raise ValueError("manifest: 'model' is empty")
        task = _need(d, "task", str, "manifest")
        if task not in TASKS:
            raise ValueError(f"manifest task must be one of {TASKS}, got {task!r}")
        labels = _need(d, "labels", list, "manifest")
        if not labels or not all(isinstance(x, str) and x for x in labels):
            raise ValueError("manifest: 'labels' must be a non-empty list of names")
        if len(set(labels)) != len(labels):
            raise ValueError("manifest: 'labels' has duplicates")
        raw = _need(d, "entries", list, "manifest")
        entries = [ManifestEntry.from_dict(e, task, labels, f"manifest entry {i}")
                   for i, e in enumerate(raw)]
        root = d.get("root", ".")
        if not isinstance(root, str) or not root:
            raise ValueError("manifest: 'root' must be a path string")
        created = d.get("created_at", "")
        if not isinstance(created, str):
            raise ValueError("manifest: 'created_at' must be a string")
        return cls(model=model, task=task, labels=list(labels), entries=entries, root=root,
                   created_at=created, version=version, root_dir=root_dir)

    def save(self, path) -> Path:
        """Write the manifest as JSON, atomically. Returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "Manifest":
        """Read a manifest file; ``root`` is resolved against the file's folder (root_dir)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read manifest {path.name}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"manifest {path.name} is not valid JSON: {exc.msg} "
                             f"(line {exc.lineno})") from None
        root = data.get("root", ".") if isinstance(data, dict) else "."
        root_dir = (path.resolve().parent / str(root)).resolve()
        manifest = cls.from_dict(data, root_dir=root_dir)
        object.__setattr__(manifest, "path", path.resolve())
        return manifest

    # ------------------------------------------------------------------ identity
    @property
    def sha256(self) -> str:
        """Hash of what the manifest trains on (model, task, labels, entries); the creation
        time and the root folder do not count."""
        body = {"model": self.model, "task": self.task, "labels": list(self.labels),
                "entries": [e.to_dict() for e in self.entries]}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # ------------------------------------------------------------------ access
    def train_entries(self) -> list:
        return [e for e in self.entries if e.split == "train"]

    def val_entries(self) -> list:
        return [e for e in self.entries if e.split == "val"]

    def resolve(self, rel: str) -> Path:
        """The absolute path of a file named relative to the manifest root."""
        _check_rel(str(rel), "manifest path")
        out = (self.root_dir / rel).resolve()
        if os.path.commonpath([out, self.root_dir]) != str(self.root_dir):
            raise ValueError(f"manifest path {rel!r} leaves the manifest root")
        return out

    def files(self) -> list:
        """(relative path, sha256) of every file the manifest names, each once."""
        seen: dict = {}
        for e in self.entries:
            seen.setdefault(e.image, e.image_sha256)
            if self.task == "segmentation":
                seen.setdefault(e.target["labels"], e.target["labels_sha256"])
        return list(seen.items())

    def verify(self) -> None:
        """Check that every named file exists and matches its sha256 (ValueError otherwise)."""
        for rel, digest in self.files():
            path = self.resolve(rel)
            if not path.is_file():
                raise ValueError(f"manifest file {rel} is missing")
            if sha256_file(path) != digest:
                raise ValueError(f"manifest file {rel} does not match its sha256")
