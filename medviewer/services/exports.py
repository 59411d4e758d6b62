"""Every export a person makes of labels, with the one ``anonymise`` option (no Qt; run on a
worker): DICOM SEG, NIfTI/NRRD label maps with their ``.labels.json`` sidecar, case-label
CSV/JSON, and the ``subject`` block that the sidecars of ``medviewer predict`` carry too.

Anonymise is on by default everywhere: an export is made to leave the workstation, and a
pseudonym still links the exports of one patient. Anonymised, a patient is named by a keyed
pseudonym (:func:`medviewer.core.deid.pseudonym`); the key is ``$MEDVIEWER_PSEUDONYM_KEY``
(hex, for sites that want one key on several machines) or ``pseudonym.key`` in the workspace,
made on first use. Study and series UIDs are kept either way: they are what ties an output to
its source images. Not anonymised, exports carry the patient's name and ID as the source has
them (e.g. a SEG going back to the PACS its study came from).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from medviewer.core.deid import patient_identity, subject_block
from medviewer.core.volume import Volume

__all__ = ["ENV_PSEUDONYM_KEY", "KEY_FILE", "pseudonym_key", "subject_for", "sidecar_path",
           "export_label_map", "export_seg", "export_case_labels"]

ENV_PSEUDONYM_KEY = "MEDVIEWER_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"


def _workspace(folder) -> Path:
    if folder is not None:
        return Path(folder)
    from .workspace import workspace_dir

    return workspace_dir()


def pseudonym_key(folder=None) -> bytes:
    """The pseudonym key: ``$MEDVIEWER_PSEUDONYM_KEY`` (hex, >= 16 bytes), else the
    workspace's ``pseudonym.key`` (``folder``, default the workspace), created once (owner
    read/write only; two processes creating it at once agree on one key)."""
    env = os.environ.get(ENV_PSEUDONYM_KEY, "").strip()
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise ValueError(f"${ENV_PSEUDONYM_KEY} must be hexadecimal") from None
        if len(key) < 16:
            raise ValueError(f"${ENV_PSEUDONYM_KEY} must hold at least 16 bytes (32 hex digits)")
        return key
    path = _workspace(folder) / KEY_FILE
    try:
        return _read_or_make_key(path)
    except OSError as exc:
        raise ValueError(f"cannot read or make the pseudonym key {path} ({exc.strerror or exc}):"
                         f" set ${ENV_PSEUDONYM_KEY}, or export without anonymising") from None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _read_or_make_key(path: Path) -> bytes:
    from medviewer.core.atomic import fsync_dir

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(32) + "\n"
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        _write_private(tmp, text)
        try:
            os.link(tmp, path)  # complete or absent, and never replaces another's key
        except FileExistsError:
            pass
        except OSError:  # no hard links here: create it in place (first creator wins)
            try:
                _write_private(path, text)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ValueError(f"{path} is not a pseudonym key (64 hex digits); remove it to make "
                         "a new one (pseudonyms made with it will change)")
    return key


def subject_for(meta: Optional[Mapping], anonymise: bool = True, key_folder=None) -> dict:
    """The ``subject`` block of an export sidecar for an image's tags (``Volume.meta``)."""
    meta = meta or {}
    key = pseudonym_key(key_folder) if anonymise and patient_identity(meta) else None
    return subject_block(meta, anonymise, key)


def sidecar_path(out_path) -> Path:
    """``x.nii.gz`` -> ``x.labels.json`` beside it."""
    out_path = Path(out_path)
    name = out_path.name
    for suf in (".nii.gz", ".nii", ".nrrd"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return out_path.with_name(name + ".labels.json")


def export_label_map(labels: np.ndarray, table: dict, geometry, path, *,
                     source: Optional[Volume] = None, anonymise: bool = True,
                     key_folder=None) -> Path:
    """Write a label map (.nii/.nii.gz/.nrrd) on ``geometry`` and its ``.labels.json``
    sidecar (label values, names and colours, which NIfTI cannot hold; the image's modality
    and ``subject``: whose image it is). Returns the label map's path."""
    from medviewer.core.atomic import atomic_write_text
    from medviewer.io.labels_io_tables import table_entries

    from .annotations import write_label_file

    out = write_label_file(labels, geometry, path, table)
    entries = sorted(table_entries(table or {}).values(), key=lambda e: e["value"])
    doc = {"format": "medviewer-labels", "version": 1,
           "labels": [{"value": int(e["value"]), "name": e["name"],
                       "color": [int(c) for c in e["color"]]} for e in entries],
           "modality": getattr(source, "modality", "") or "",
           "shape_zyx": [int(s) for s in geometry.shape],
           "subject": subject_for(getattr(source, "meta", None), anonymise, key_folder)}
    atomic_write_text(sidecar_path(out), json.dumps(doc, indent=2) + "\n")
    return out


def export_seg(labels: np.ndarray, table: dict, volume: Volume, path, *,
               anonymise: bool = True, key_folder=None) -> Path:
    """A BINARY DICOM SEG of ``labels`` on ``volume``'s DICOM series (see
    :mod:`medviewer.io.dicom_seg_write` for what anonymising does to it)."""
    from medviewer.io.dicom_seg import write_seg

    key = pseudonym_key(key_folder) if anonymise else None
    return write_seg(labels, table, volume, path, anonymise=anonymise, pseudonym_key=key)


def _case_subjects(store, hashes, anonymise: bool) -> dict:
    """{image hash: subject columns} from the first source file of each image (read now:
    the store keeps no patient identity). Unknown sources give empty columns."""
    from medviewer.io.dicom_deid import read_identity

    out = {}
    for h in hashes:
        info = store.image_info(h) or {}
        paths = info.get("source_paths") or []
        meta = read_identity(paths[0]) if paths else {}
        block = subject_for(meta, anonymise, store.root)
        block.pop("anonymised")
        out[h] = block
    return out


def export_case_labels(store, path, *, anonymise: bool = True) -> Path:
    """Every case-label record of the store as CSV or JSON (by suffix), with each image's
    subject (pseudonym and UIDs, or with anonymise off the patient's name and ID)."""
    from medviewer.storage.export import export_case_labels as export

    records = store.records(kind="case")
    subjects = _case_subjects(store, dict.fromkeys(r.image_hash for r in records), anonymise)
    return export(records, path, subjects=subjects)
