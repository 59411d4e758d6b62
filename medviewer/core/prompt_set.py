"""The training set of the promptable model built from prompt records: one JSON file (what
each record is, its frozen split) beside one ``.npz`` (each record's 2D image slice and its
accepted mask). The fine-tune child process reads these files, never the label store (as the
automatic models' trainer reads a manifest). numpy only.

JSON: ``{"format": "medviewer-prompt-set", "version": 1, "model", "created_at", "arrays":
"<name>.npz", "arrays_sha256", "records": [{"id", "image_hash", "unit", "split", "engine",
"plane", "slice", "spacing": [row mm, column mm], "n_prompts", "modality"}]}``; the npz holds
``image_<id>`` (float32) and ``mask_<id>`` (bool) for every record.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from medviewer.core.atomic import atomic_open, atomic_write_text

FORMAT = "medviewer-prompt-set"
VERSION = 1

__all__ = ["PromptSet", "FORMAT", "is_prompt_set", "prompt_unit"]


def prompt_unit(image_hash: str, plane: str, index: int, slab: int = 8) -> str:
    """The split unit of a prompt record: the slab of ``slab`` slices of one plane of one image
    (neighbouring slices of a record never fall on the other side of the split)."""
    return f"{image_hash}:{plane[0]}{int(index) // int(slab)}"


def is_prompt_set(path) -> bool:
    """Whether ``path`` is a prompt-set JSON file (not a training manifest)."""
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class PromptSet:
    """Records (dicts) + their arrays; ``path`` once saved or loaded."""

    def __init__(self, model: str, records: List[dict], arrays: Dict[str, np.ndarray],
                 created_at: str = "", path: Optional[Path] = None, sha256: str = ""):
        self.model, self.records, self.arrays = model, list(records), arrays
        self.created_at, self.path, self.sha256 = created_at, path, sha256

    def train_entries(self) -> List[dict]:
        return [r for r in self.records if r["split"] == "train"]

    def val_entries(self) -> List[dict]:
        return [r for r in self.records if r["split"] == "val"]

    def image(self, rid: str) -> np.ndarray:
        return np.asarray(self.arrays[f"image_{rid}"], np.float32)

    def mask(self, rid: str) -> np.ndarray:
        return np.asarray(self.arrays[f"mask_{rid}"], bool)

    def save(self, folder) -> Path:
        """Write ``<folder>/prompt-set-<sha12>.json`` and its npz (each atomically, the npz
        first); the name comes from the content, so the same set is the same file."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: self.arrays[k] for k in sorted(self.arrays)})
        blob = buf.getvalue()
        arrays_sha = hashlib.sha256(blob).hexdigest()
        body = {"format": FORMAT, "version": VERSION, "model": self.model,
                "arrays_sha256": arrays_sha, "records": self.records}
        sha = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        npz = folder / f"prompt-set-{sha[:12]}.npz"
        with atomic_open(npz, "wb") as fh:
            fh.write(blob)
        body.update(arrays=npz.name, created_at=self.created_at, sha256=sha)
        path = folder / f"prompt-set-{sha[:12]}.json"
        atomic_write_text(path, json.dumps(body, indent=1) + "\n")
        self.path, self.sha256 = path, sha
        return path

    @classmethod
    def load(cls, path) -> "PromptSet":
        """Read and check a saved set (ValueError when it is not one, or its arrays changed)."""
        path = Path(path)
        body = json.loads(path.read_text())
        if body.get("format") != FORMAT:
            raise ValueError(f"{path.name} is not a prompt set")
        if int(body.get("version", 0)) > VERSION:
            raise ValueError(f"{path.name}: prompt set version {body['version']} is newer than "
                             "this app")
        blob = (path.parent / body["arrays"]).read_bytes()
        if hashlib.sha256(blob).hexdigest() != body["arrays_sha256"]:
            raise ValueError(f"{body['arrays']} does not match its prompt set (changed?)")
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        for r in body["records"]:
            for kind in ("image", "mask"):
                if f"{kind}_{r['id']}" not in arrays:
                    raise ValueError(f"{body['arrays']} lacks the {kind} of record "
                                     f"{r['id'][:8]}")
        return cls(body["model"], body["records"], arrays, body.get("created_at", ""), path,
                   body.get("sha256", ""))
