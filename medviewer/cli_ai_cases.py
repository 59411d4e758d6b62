"""Cases for ``medviewer predict``: which images/series the given paths hold, and reading them.

Each image file (PNG/JPEG/BMP/TIFF, read with Pillow), each DICOM series and each volume file
(found with ``medviewer.io.discover.scan_paths``) is one case. A case's name is its path (a
series: the folder holding its files, plus ``#series<N>`` when a folder holds several), never
patient identity. Also: where segmentation outputs go, the one-line terminal progress, and
``medviewer models versions|promote|rollback`` (:func:`model_versions_command`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .cli import TtyProgress  # noqa: E402  (one terminal progress line for all commands)

__all__ = ["IMAGE_SUFFIXES", "Case", "TtyProgress", "find_cases", "read_image", "load_case",
           "reporter", "is_labelmap_file", "seg_targets", "model_versions_command",
           "val_metric"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

@dataclass
class Case:
    name: str  # what the output calls it (a path; never patient identity)
    image_path: Optional[Path] = None  # PNG/JPEG
    entry: object = None  # medviewer.io.catalogue.SeriesEntry


def _is_image(p: Path) -> bool:
    return p.name.lower().endswith(IMAGE_SUFFIXES)


def _entry_name(entry, shared_parent: bool) -> str:
    if len(entry.paths) == 1:
        return str(entry.paths[0])
    parent = os.path.commonpath([str(Path(q).parent) for q in entry.paths])
    if shared_parent:
        tag = entry.series_number if entry.series_number is not None else entry.series_uid[-12:]
        return f"{parent}#series{tag}"
    return parent


def find_cases(paths: Sequence[str], tty: TtyProgress):
    """(cases, skipped [(path, reason)]) for the given paths."""
    from medviewer.io.discover import scan_paths

    images, others, missing = [], [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for q in sorted(q for q in p.rglob("*") if q.is_file()):
                (images if _is_image(q) else others).append(q)
        elif p.is_file():
            (images if _is_image(p) else others).append(p)
        else:
            missing.append((str(p), "no such file or folder"))
    cases = [Case(str(q), image_path=q) for q in images]
    skipped = list(missing)
    if others:
        try:
            cat = scan_paths([str(q) for q in others], reporter(tty))
        finally:
            tty.done()
        parents: dict = {}
        for e in cat.series:
            if len(e.paths) > 1:
                key = os.path.commonpath([str(Path(q).parent) for q in e.paths])
                parents[key] = parents.get(key, 0) + 1
        for e in cat.series:
            key = (os.path.commonpath([str(Path(q).parent) for q in e.paths])
                   if len(e.paths) > 1 else None)
            cases.append(Case(_entry_name(e, parents.get(key, 0) > 1), entry=e))
        skipped += [(s.path, s.reason) for s in cat.skipped]
        skipped += [(n.path, f"{n.kind}: not an image") for n in cat.non_image]
    return cases, skipped


def reporter(tty: TtyProgress):
    if not tty.enabled:
        return None
    from medviewer.jobs.progress import Reporter

    return Reporter(lambda pr: tty(pr.done, pr.total, pr.message))


def read_image(path: Path):
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
            arr = np.asarray(im)
        else:
            arr = np.asarray(im.convert("RGB"))
    return arr


def load_case(case: Case, tty: TtyProgress):
    from medviewer.io.load import load_series

    try:
        return load_series(case.entry, reporter(tty))
    finally:
        tty.done()


def is_labelmap_file(out: str) -> bool:
    return out.lower().endswith((".nii", ".nii.gz", ".nrrd"))


def seg_targets(cases, out: str) -> list:
    if is_labelmap_file(out):
        return [Path(out)]
    folder = Path(out)
    used: dict = {}
    targets = []
    for c in cases:
        base = Path(c.name.split("#")[0]).name or "case"
        for suf in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".dcm"):
            if base.lower().endswith(suf):
                base = base[: -len(suf)]
                break
        if "#" in c.name:
            base += "_" + c.name.split("#", 1)[1]
        n = used.get(base, 0)
        used[base] = n + 1
        targets.append(folder / (f"{base}_{n}.nii.gz" if n else f"{base}.nii.gz"))
    return targets


# ---------------------------------------------------------------------------- model versions
def _versions_table(reg, name: str, as_json: bool) -> int:
    from medviewer.ai.versions import (active_version, headline_metric, history,
                                       parent_on_same_val)

    cards = [c for c in reg.list() if c.name == name]
    if not cards:
        raise ValueError(f"no model named {name!r}")
    pointer = active_version(reg, name)
    active = pointer or reg.get(name).version
    rows = []
    for c in cards:
        vm = headline_metric(c)
        rows.append({"version": c.version, "parent": c.parent_version,
                     "active": c.version == active,
                     "metric": vm[0] if vm else None, "value": vm[1] if vm else None,
                     "split": vm[2] if vm else None,
                     "parent_on_same_val": parent_on_same_val(c),
                     "source": "built-in" if reg.is_builtin(c) else "user",
                     "report": str(c.folder / "report.md") if c.folder is not None
                     and (c.folder / "report.md").is_file() else None})
    hist = history(reg, name)
    if as_json:
        print(json.dumps({"model": name, "active": active, "pointer": pointer is not None,
                          "versions": rows, "history": hist}, indent=2))
        return 0
    print(f"{'':2}{'version':<10} {'parent':<10} {'val metric':<34} source")
    for r in rows:
        metric = (f"{r['metric']} {r['value']:.4f} ({r['split']})" if r["metric"] else "—")
        base = r["parent_on_same_val"]
        same = f"   parent on the same set: {base:.4f}" if base is not None else ""
        print(f"{'*' if r['active'] else ' ':2}{r['version']:<10} {r['parent'] or '—':<10} "
              f"{metric:<34} {r['source']}{same}")
    note = "active.json" if pointer else "no pointer: the highest built-in version"
    print(f"* active: {name}:{active} ({note})")
    for h in hist:
        print(f"  {h.get('at', '?')} {h.get('action', '?')} -> {h.get('version', '?')}"
              f"{' (' + str(h['reason']) + ')' if h.get('reason') else ''}")
    return 0


def model_versions_command(reg, args, err) -> int:
    """``models versions NAME`` / ``promote NAME VERSION`` / ``rollback NAME [VERSION]``."""
    from medviewer.ai.architectures import ModelError
    from medviewer.ai.versions import active_version, promote, rollback

    name = args.operands[0]
    try:
        if args.action == "versions":
            return _versions_table(reg, name, args.json)
        before = active_version(reg, name) or reg.get(name).version
        if args.action == "promote":
            version = args.operands[1]
            promote(reg, name, version, reason=args.reason or "promoted from the command line")
        else:
            version = rollback(reg, name, args.operands[1] if len(args.operands) > 1 else None,
                               reason=args.reason)
    except (ModelError, ValueError, OSError) as exc:
        lines = str(exc).strip().splitlines()
        err(f"error: {lines[0] if lines else type(exc).__name__}")
        return 1
    print(f"{name}: active version {version} (was {before})")
    return 0
