"""Existing labels into a workspace as a person's final records (``medviewer labels import``).

A team with a spreadsheet of findings, or a folder of label maps, starts the learning loop at
once: every image becomes a *final* record made by a person — what the app stores when a
clinician confirms — whose payload says where it came from (``imported_from``: the CSV's file
name, its sha256 and line numbers). The image is snapshotted into the workspace like any
labelled image, so ``medviewer finetune`` trains on it.

CSV forms (UTF-8, comma separated; blank lines and lines starting with ``#`` are skipped). A
header row is optional: it is recognised by its first cell (``path``, ``image``,
``image_path``, ``file`` or ``filename``) and then the columns are found by name
(``label``/``class``, ``slice``, ``labelmap``/``labelmap_path``/``mask``/``mask_path``).

- case labels: ``path,label`` or ``path,label,slice``: an image file (PNG/JPEG/BMP/TIFF), a
  DICOM file, a folder holding one DICOM series, or a volume file (NIfTI/NRRD/MHA/MGZ). A
  volume of several slices needs the slice (0-based along z); rows naming several slices of
  one volume become one record.
- label maps (segmentation): ``image_path,labelmap_path``: the image a volume file, DICOM file
  or DICOM series folder (a plain image file has no pixel spacing), the label map a
  NIfTI/NRRD/MHA file on the image's grid (``resample``: nearest-neighbour onto it otherwise).
  Label names come from ``label_names`` (values 1, 2, ... in that order, or ``VALUE=NAME``
  pairs: then every other value is background, e.g. two organs of a 50-class map), else the
  file (NRRD segment names), else the model's labels (value i is the model's label i). A value
  present in a label map without a name is an error otherwise.

Paths are relative to the CSV file's folder unless absolute. ``kind`` "auto" reads label maps
when the header names a label-map column, or without a header when every row's second cell
is a label-map file name; case labels otherwise.

All or nothing: every row is read and checked first, and any problem (a missing file, a label
the model lacks, a volume without a slice, the same image twice with different labels...)
raises :class:`LabelImportError` listing every problem with its line number; nothing is
stored. The records are then written in one store transaction, rolled back (files removed) on
an error or a cancel. Importing the same file again adds nothing: an image whose newest final
record by a person already holds the same labels is left as it is.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

from .cases import IMAGE_SUFFIXES, find_cases, load_case, read_image

__all__ = ["LabelImportError", "ImportResult", "import_labels", "parse_label_names", "KINDS"]

KINDS = ("auto", "case", "labelmap")
_HEADER_FIRST = ("path", "image", "image_path", "file", "filename", "image_file")
_LABEL_COLS = ("label", "class", "finding")
_SLICE_COLS = ("slice", "z", "slice_index")
_MAP_COLS = ("labelmap", "labelmap_path", "label_map", "mask", "mask_path", "label_path",
             "segmentation")
_MAP_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
MAX_ERRORS = 50  # listed in the message; the count says how many more


class LabelImportError(ValueError):
    """The file cannot be imported; ``errors`` lists every problem ("line N: ...")."""

    def __init__(self, errors: list, path=None):
        self.errors = list(errors)
        shown = self.errors[:MAX_ERRORS]
        more = len(self.errors) - len(shown)
        where = f"{Path(path).name}: " if path is not None else ""
        super().__init__(f"{where}nothing imported, {len(self.errors)} problem"
                         f"{'s' if len(self.errors) != 1 else ''}:\n  " + "\n  ".join(shown)
                         + (f"\n  … and {more} more" if more else ""))


@dataclass
class ImportResult:
    kind: str  # "case" or "labelmap"
    rows: int
    images: int
    added: int  # new final records
    unchanged: int  # images whose newest final record already held these labels
    record_ids: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # e.g. label maps resampled

    def to_dict(self) -> dict:
        return {"kind": self.kind, "rows": self.rows, "images": self.images,
                "added": self.added, "unchanged": self.unchanged,
                "record_ids": list(self.record_ids), "notes": list(self.notes)}


@dataclass
class _Row:
    line: int
    image: Path
    label: str = ""
    slice: Optional[int] = None
    labelmap: Optional[Path] = None


class _RowError(ValueError):
    pass


# ---------------------------------------------------------------------------- reading the CSV
def _is_map_name(text: str) -> bool:
    return text.strip().lower().endswith(_MAP_SUFFIXES)


def _column(header: list, names: Sequence[str]) -> Optional[int]:
    for i, cell in enumerate(header):
        if cell in names:
            return i
    return None


def _resolve(base: Path, text: str) -> Path:
    p = Path(text.strip()).expanduser()
    return p if p.is_absolute() else base / p


def _lines(path: Path) -> list:
    """(line number, cells) of the CSV's rows that are not blank or comments."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelImportError([f"cannot read the file: {exc}"], path) from None
    return [(n, [c.strip() for c in cells])
            for n, cells in enumerate(csv.reader(text.splitlines()), start=1)
            if any(c.strip() for c in cells) and not cells[0].lstrip().startswith("#")]


def _layout(lines: list, kind: str, path: Path) -> tuple:
    """(kind, {column: index or None}, header line number or None, data lines)."""
    first = [c.lower() for c in lines[0][1]]
    if first[0] not in _HEADER_FIRST:
        if kind == "auto":
            kind = ("labelmap" if all(len(c) > 1 and _is_map_name(c[1]) for _, c in lines)
                    else "case")
        cols = ({"path": 0, "labelmap": 1} if kind == "labelmap" else
                {"path": 0, "label": 1, "slice": 2})
        return kind, cols, None, lines
    found = {"path": 0, "label": _column(first, _LABEL_COLS),
             "slice": _column(first, _SLICE_COLS), "labelmap": _column(first, _MAP_COLS)}
    if kind == "auto":
        kind = "labelmap" if found["labelmap"] is not None else "case"
    need = "labelmap" if kind == "labelmap" else "label"
    if found[need] is None:
        names = _MAP_COLS[:2] if kind == "labelmap" else _LABEL_COLS[:2]
        raise LabelImportError([f"line {lines[0][0]}: the header has no {' or '.join(names)} "
                                f"column"], path)
    cols = ({"path": 0, "labelmap": found["labelmap"]} if kind == "labelmap" else
            {"path": 0, "label": found["label"], "slice": found["slice"]})
    return kind, cols, lines[0][0], lines[1:]


def _row(n: int, cells: list, kind: str, cols: dict, base: Path, header: bool) -> _Row:
    form = "image_path,labelmap_path" if kind == "labelmap" else "path,label[,slice]"
    required = [cols["path"], cols["labelmap" if kind == "labelmap" else "label"]]
    if len(cells) <= max(required):
        raise _RowError(f"line {n}: expected {form}, got {len(cells)} column(s)")
    if not header and any(cells[len(cols):]):
        raise _RowError(f"line {n}: {len(cells)} columns; expected {form}")
    if not cells[cols["path"]]:
        raise _RowError(f"line {n}: empty image path")
    row = _Row(n, _resolve(base, cells[cols["path"]]))
    if kind == "labelmap":
        if not cells[cols["labelmap"]]:
            raise _RowError(f"line {n}: empty label map path")
        row.labelmap = _resolve(base, cells[cols["labelmap"]])
        return row
    row.label = cells[cols["label"]]
    if not row.label:
        raise _RowError(f"line {n}: empty label")
    zi = cols.get("slice")
    z = cells[zi] if zi is not None and zi < len(cells) else ""
    if z:
        try:
            row.slice = int(z)
        except ValueError:
            raise _RowError(f"line {n}: slice must be a whole number, got {z!r}") from None
        if row.slice < 0:
            raise _RowError(f"line {n}: slice must be >= 0, got {row.slice}")
    return row


def _parse(path: Path, kind: str) -> tuple:
    """(kind, rows, errors) of the CSV at ``path``."""
    lines = _lines(path)
    if not lines:
        raise LabelImportError(["no rows"], path)
    kind, cols, header, lines = _layout(lines, kind, path)
    rows, errors = [], []
    base = path.resolve().parent
    for n, cells in lines:
        try:
            rows.append(_row(n, cells, kind, cols, base, header is not None))
        except _RowError as exc:
            errors.append(str(exc))
    if not rows and not errors:
        errors.append("no rows after the header")
    return kind, rows, errors


# ---------------------------------------------------------------------------- reading images
def image_file_volume(path: Path) -> Volume:
    """A plain image file (PNG/JPEG/...) as a one-slice Volume, read as ``predict`` reads it
    (colour kept as RGB); 1 mm pixels assumed and marked unknown."""
    arr = np.ascontiguousarray(read_image(path))
    if arr.ndim not in (2, 3):
        raise _RowError(f"{path.name}: not a 2D image (shape {arr.shape})")
    geom = Geometry(shape=(1,) + tuple(arr.shape[:2]))
    return Volume(arr[None], geom, description=path.name, source_paths=[str(path)],
                  meta={"spacing_unknown": True})


def _read_volume(path: Path, reporter=None) -> Volume:
    if not path.exists():
        raise _RowError(f"{path}: no such file or folder")
    if path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES):
        try:
            return image_file_volume(path)
        except _RowError:
            raise
        except Exception as exc:  # Pillow's many errors: one line
            raise _RowError(f"{path.name}: cannot read the image ({exc})") from None
    cases, skipped = find_cases([str(path)], reporter)
    if not cases:
        why = skipped[0][1] if skipped else "no image or volume found"
        raise _RowError(f"{path.name}: {why}")
    if len(cases) > 1:
        raise _RowError(f"{path.name} holds {len(cases)} images or series; give one file, or "
                        f"a folder with one series")
    case = cases[0]
    if case.image_path is not None:
        return image_file_volume(case.image_path)
    try:
        return load_case(case, reporter)
    except Exception as exc:
        raise _RowError(f"{path.name}: cannot load ({exc})") from None


def _hash(volume: Volume) -> str:
    from medviewer.core.hashing import image_hash

    return image_hash(volume)


# ---------------------------------------------------------------------------- case labels
def _case_states(rows: list, n_slices: int, model_labels: Optional[list]) -> tuple:
    """(series {label: True}, slices {"z": {label: True}}) of an image's rows; _RowError."""
    series, slices = {}, {}
    for r in rows:
        if model_labels is not None and r.label not in model_labels:
            close = [m for m in model_labels if m.lower() == r.label.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _RowError(f"line {r.line}: {r.label!r} is not a label of the model "
                            f"({', '.join(model_labels)}){hint}")
        if r.slice is None and n_slices > 1:
            raise _RowError(f"line {r.line}: {r.image.name} is a volume of {n_slices} slices; "
                            f"give the slice: path,label,slice")
        if r.slice is not None and r.slice >= n_slices:
            raise _RowError(f"line {r.line}: slice {r.slice} is outside the image "
                            f"(0..{n_slices - 1})")
        if n_slices == 1:
            if series and r.label not in series:
                raise _RowError(f"line {r.line}: the same image as line {rows[0].line} with "
                                f"another label ({r.label!r} vs {next(iter(series))!r})")
            series[r.label] = True
        else:
            z = str(r.slice)
            if z in slices and r.label not in slices[z]:
                raise _RowError(f"line {r.line}: slice {r.slice} of the same image has another "
                                f"label on an earlier line ({next(iter(slices[z]))!r})")
            slices[z] = {r.label: True}
    return series, dict(sorted(slices.items(), key=lambda kv: int(kv[0])))


def _same_case(rec, series: dict, slices: dict) -> bool:
    p = rec.payload or {}
    return (p.get("series") or {}) == series and (p.get("slices") or {}) == slices


# ---------------------------------------------------------------------------- label maps
def parse_label_names(items) -> tuple:
    """``["liver", "spleen"]`` -> ({1: "liver", 2: "spleen"}, False); ``["5=liver",
    "1=spleen"]`` -> ({5: "liver", 1: "spleen"}, True: only these values are labels, any other
    value of a label map counts as background). ValueError for a mix or a bad value."""
    items = [str(x).strip() for x in items or () if str(x).strip()]
    pairs = [x.partition("=") for x in items]
    explicit = [p for p in pairs if p[1]]
    if not explicit:
        return {i + 1: n for i, n in enumerate(items)}, False
    if len(explicit) != len(pairs):
        raise ValueError("label names: give either NAME1,NAME2,... (values 1, 2, ...) or "
                         "VALUE=NAME pairs, not both")
    out = {}
    for value, _, name in pairs:
        try:
            v = int(value)
        except ValueError:
            raise ValueError(f"label names: {value!r} in {value}={name} is not a whole "
                             f"number") from None
        if v <= 0 or not name.strip():
            raise ValueError(f"label names: {value}={name}: values start at 1 and need a name")
        out[v] = name.strip()
    return out, True


def _names(table, label_names: Optional[dict], model_labels: Optional[list]) -> dict:
    from medviewer.io.labels_io_tables import table_entries

    if label_names:  # what the person said wins over the file
        return dict(label_names)
    named = {int(v): e["name"] for v, e in table_entries(table).items()} if table else {}
    if named:
        return named
    if model_labels:
        return {i: n for i, n in enumerate(model_labels) if i > 0}
    return {}


def _read_labelmap(row: _Row, volume: Volume, resample: bool, label_names, model_labels,
                   notes: list) -> tuple:
    """(labels (z, y, x), table dict) of a row's label map on the image grid; _RowError."""
    from medviewer.io.labels_io import GeometryMismatch, read_labelmap

    if not row.labelmap.is_file():
        raise _RowError(f"line {row.line}: {row.labelmap}: no such file")
    if volume.meta.get("spacing_unknown") and volume.shape[0] == 1 and not volume.modality:
        raise _RowError(f"line {row.line}: {row.image.name}: segmentation labels need a "
                        f"volume or DICOM image with pixel spacing, not a plain image file")
    try:
        labels, table, warnings = read_labelmap(row.labelmap, volume.geometry, resample=resample)
    except GeometryMismatch as exc:
        raise _RowError(f"line {row.line}: {exc}".replace(
            "Use resample=True (Labels > Import > Resample to image)", "Use --resample")) from None
    except Exception as exc:
        raise _RowError(f"line {row.line}: {row.labelmap.name}: {exc}") from None
    notes.extend(f"line {row.line}: {w}" for w in warnings if "resampled" in w)
    names = _names(table, label_names[0] if label_names else None, model_labels)
    present = sorted(int(v) for v in np.unique(labels) if v != 0)
    unnamed = [v for v in present if v not in names]
    if label_names and label_names[1]:
        present = [v for v in present if v in names]  # VALUE=NAME: the rest is background
    elif unnamed:
        raise _RowError(f"line {row.line}: label value(s) {', '.join(map(str, unnamed))} have no "
                        f"name (give --labels NAME1,NAME2,... or --model NAME)")
    if model_labels:
        lower = {m.lower() for m in model_labels[1:]}
        bad = sorted({names[v] for v in present if names[v].lower() not in lower})
        if bad:
            raise _RowError(f"line {row.line}: {', '.join(map(repr, bad))} not a label of the "
                            f"model ({', '.join(model_labels[1:])})")
    table = {"labels": [{"value": v, "name": n} for v, n in sorted(names.items())]}
    return labels, table


def _same_labelmap(store, rec, labels: np.ndarray, table: dict) -> bool:
    from medviewer.storage.manifest_build import _table_values

    if _table_values(rec.payload.get("table", {})) != _table_values(table):
        return False
    old = store.load_labels(rec)
    return old.shape == labels.shape and bool(np.array_equal(old, labels))


# ---------------------------------------------------------------------------- importing
def _newest_final(store, image_hash: str, kind: str):
    for rec in reversed(store.records(image_hash, kind=kind)):
        if rec.tag == "final" and rec.source.kind == "person":
            return rec
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _progress(reporter, done: int, total: int, message: str) -> None:
    if reporter is not None:
        reporter(done, total, message)


def _check(rows: list, kind: str, model_labels, label_names, resample: bool, reporter,
           total: int) -> tuple:
    """Pass 1: every row read and checked -> ({hash: [rows]}, errors, notes)."""
    groups: dict = {}
    errors, notes = [], []
    for i, row in enumerate(rows):
        _progress(reporter, i, total, f"Checking line {row.line}…")
        try:
            vol = _read_volume(row.image)
            h = _hash(vol)
            if kind == "labelmap":
                if h in groups:
                    raise _RowError(f"line {row.line}: the same image as line "
                                    f"{groups[h][0].line}")
                _read_labelmap(row, vol, resample, label_names, model_labels, notes)
            else:
                _case_states(groups.get(h, []) + [row], vol.shape[0], model_labels)
        except _RowError as exc:
            text = str(exc)
            errors.append(text if text.startswith("line ") else f"line {row.line}: {text}")
            continue
        groups.setdefault(h, []).append(row)
    return groups, errors, notes


def import_labels(store, csv_path, kind: str = "auto", model_labels: Optional[Sequence] = None,
                  label_names: Optional[Sequence] = None, annotator: Optional[str] = None,
                  resample: bool = False, reporter=None) -> ImportResult:
    """Import the labels of ``csv_path`` into ``store`` (see the module docstring) as final
    records of the person ``annotator`` (default: the login name). ``model_labels``: the model the labels
    are for (its labels are the only ones accepted; for label maps, index 0 is background).
    ``reporter(done, total, message)`` reports progress and raises ``Cancelled`` to stop
    (nothing is stored then). LabelImportError lists every bad row; nothing is stored."""
    from medviewer.storage.store import Source

    from .workspace import annotator_name

    path = Path(csv_path)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    source = Source("person", (annotator or "").strip() or annotator_name())
    kind, rows, errors = _parse(path, kind)
    model_labels = list(model_labels) if model_labels else None
    try:
        label_names = parse_label_names(label_names) if label_names else None
    except ValueError as exc:
        raise LabelImportError([str(exc)], path) from None
    total = 2 * len(rows)
    groups, row_errors, notes = _check(rows, kind, model_labels, label_names, resample,
                                       reporter, total)
    errors += row_errors
    if errors:
        raise LabelImportError(sorted(errors, key=_line_of), path)
    provenance = {"file": path.name, "sha256": _sha256(path)}
    classes = model_labels or list(dict.fromkeys(r.label for r in rows))
    result = ImportResult(kind, len(rows), len(groups), 0, 0, notes=notes)
    done = len(rows)
    with store.transaction():
        for h, group in groups.items():
            _progress(reporter, done, total, f"Storing line {group[0].line}…")
            done += len(group)
            vol = _read_volume(group[0].image)
            if _hash(vol) != h:
                raise LabelImportError([f"line {group[0].line}: {group[0].image.name} changed "
                                        f"while it was imported"], path)
            imported = dict(provenance, lines=[r.line for r in group])
            if kind == "labelmap":
                rec = _store_labelmap(store, vol, h, group[0], resample, label_names,
                                      model_labels, source, imported)
            else:
                rec = _store_case(store, vol, h, group, classes, model_labels, source,
                                  imported)
            if rec is None:
                result.unchanged += 1
            else:
                result.added += 1
                result.record_ids.append(rec.id)
        _progress(reporter, total, total, "Done")
    return result


def _line_of(message: str) -> int:
    try:
        return int(message.split(":", 1)[0].split()[1])
    except (IndexError, ValueError):
        return 0


def _store_case(store, vol: Volume, h: str, group: list, classes: list, model_labels,
                source, imported: dict):
    series, slices = _case_states(group, vol.shape[0], model_labels)
    old = _newest_final(store, h, "case")
    if old is not None and _same_case(old, series, slices):
        return None
    store.add_image(vol, h, [str(p) for p in vol.source_paths or ()])
    payload = {"classes": list(classes), "series": series, "slices": slices,
               "imported_from": imported}
    return store.add_case_labels(h, payload, "final", source)


def _store_labelmap(store, vol: Volume, h: str, row: _Row, resample: bool, label_names,
                    model_labels, source, imported: dict):
    labels, table = _read_labelmap(row, vol, resample, label_names, model_labels, [])
    old = _newest_final(store, h, "labelmap")
    if old is not None and _same_labelmap(store, old, labels, table):
        return None
    store.add_image(vol, h, [str(p) for p in vol.source_paths or ()])
    return store.add_labelmap(h, labels, vol.geometry.affine_ras(), table, "final", source,
                              extra={"imported_from": imported})
