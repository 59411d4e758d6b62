"""``medviewer predict``: run a model on files, through the app's own code path
(:mod:`medviewer.services.ai_runs`).

``medviewer predict --model NAME[:VERSION] PATH... --out OUT [--device auto|cpu|cuda|mps]
[--slice N]``: every PATH is a DICOM series folder or file, a NIfTI/NRRD/MHA volume, an image
file (PNG/JPEG/BMP/TIFF via Pillow; a DICOM radiograph) or a folder of them. Each image file,
each DICOM series and each volume file is one case. Classification writes JSON lines
``{"case", "class", "probabilities", "model"}`` to OUT (``-``: stdout); segmentation writes a
label map NIfTI per case (OUT is the file for one case, a folder for several) with a
``.labels.json`` sidecar (label names, model, warnings, case uncertainty). A case that cannot
be read or does not suit the model is skipped with a message; the exit code is 0 when at least
one case succeeded, 1 otherwise (2 for usage errors). Patient names and IDs are never printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from medviewer.services.cases import (find_cases, is_labelmap_file, load_case, read_image,
                                      seg_targets)

from .progress import TtyProgress, err, reason, reporter

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="Run a model on files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{predict}")
    pp = sub.add_parser("predict", help="run a model on images or volumes",
                        description="Run a registry model on every case found in PATH.")
    pp.add_argument("--model", required=True, metavar="NAME[:VERSION]",
                    help="model name (its active version) or name:version, see 'medviewer models'")
    pp.add_argument("paths", nargs="+", metavar="PATH",
                    help="DICOM series/file, NIfTI/NRRD volume, PNG/JPEG image, or a folder")
    pp.add_argument("--out", required=True, metavar="OUT",
                    help="classification: JSON-lines file ('-' for stdout); segmentation: "
                         "label map .nii.gz for one case, or a folder")
    pp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    pp.add_argument("--slice", type=int, metavar="N",
                    help="only slice N (0-based along z) of each volume")
    return p


def _context(lane, tty: TtyProgress):
    from medviewer.services.ai_runs import InferenceContext

    return InferenceContext(lane, reporter(tty))


def _classify_case(case, card, lane, args, tty) -> dict:
    from medviewer.services.ai_runs import classify_image, volume_window

    invert, window, z = False, None, 0
    if case.image_path is not None:
        image = read_image(case.image_path)
    else:
        try:
            vol = load_case(case, reporter(tty))
        finally:
            tty.done()
        nz = vol.shape[0]
        if nz > 1 and args.slice is None:
            raise ValueError(f"a volume of {nz} slices; {card.ref} classifies 2D images "
                             f"(give --slice N to classify one slice)")
        z = 0 if args.slice is None else args.slice
        if not 0 <= z < nz:
            raise ValueError(f"--slice {z} is outside 0..{nz - 1}")
        image, invert, window = vol.array[z], bool(vol.invert), volume_window(vol)
    try:
        run = classify_image(_context(lane, tty), card, image, z, invert=invert, window=window)
    finally:
        tty.done()
    return {"case": case.name, **run.to_dict()}


def _even_volume(vol, notes: list):
    if not vol.geometry.is_uneven:
        return vol
    from medviewer.core.resample import resample_even

    vol = resample_even(vol)
    notes.append(f"uneven slice spacing: the volume was resampled to even "
                 f"{vol.geometry.spacing[2]:g} mm slices first (a NIfTI label map cannot "
                 f"store uneven spacing); the label map is on that grid")
    return vol


def _segment_case(case, card, lane, args, tty, out_path: Path) -> dict:
    from medviewer.core.atomic import atomic_write_text
    from medviewer.services.ai_runs import segment_volume
    from medviewer.services.annotations import write_label_file

    if case.image_path is not None:
        raise ValueError(f"{card.ref} segments volumes with known voxel spacing; "
                         f"{case.image_path.suffix} images have none")
    notes: list = []
    try:
        vol = _even_volume(load_case(case, reporter(tty)), notes)
    finally:
        tty.done()
    if vol.is_rgb:
        raise ValueError("a colour image; the segmentation model expects grey CT/MR data")
    if args.slice is not None and not 0 <= args.slice < vol.shape[0]:
        raise ValueError(f"--slice {args.slice} is outside 0..{vol.shape[0] - 1}")
    try:
        run = segment_volume(_context(lane, tty), card, vol, args.slice)
    finally:
        tty.done()
    z0, z1 = run.z_range
    table = {"labels": [{"value": i, "name": n} for i, n in enumerate(run.label_names) if i > 0]}
    write_label_file(run.labels, vol.geometry, out_path, table)
    sidecar = {"case": case.name, "model": run.ref, "labels": [
        {"value": i, "name": n} for i, n in enumerate(run.label_names)],
        "slices": [z0, z1], "uncertainty": run.uncertainty, "warnings": notes + run.warnings,
        "preprocessing": run.preprocessing}
    atomic_write_text(_sidecar_path(out_path), json.dumps(sidecar, indent=2) + "\n")
    return {"case": case.name, "out": str(out_path), "labels": {
        n: int((run.labels == i).sum()) for i, n in enumerate(run.label_names) if i > 0}}


def _sidecar_path(out_path: Path) -> Path:
    name = out_path.name
    for suf in (".nii.gz", ".nii", ".nrrd"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return out_path.with_name(name + ".labels.json")


def cmd_predict(args) -> int:
    from medviewer.services.ai_runs import ModelLane
    from medviewer.services.models import ModelCatalog, ModelError

    lane = ModelLane(args.device, strict=True, threads=os.cpu_count() or 1)  # no GUI to spare
    try:
        card = ModelCatalog().get(args.model)
        device = lane.device()
    except (ModelError, RuntimeError, ValueError) as exc:
        err(f"error: {exc}")
        return 1
    tty = TtyProgress()
    cases, skipped = find_cases(args.paths, reporter(tty), tty.done)
    for path, why in skipped:
        err(f"skipped {path}: {why}")
    if not cases:
        err("error: no images or volumes found in " + ", ".join(map(str, args.paths)))
        return 1
    seg = card.task == "segmentation"
    if seg and is_labelmap_file(args.out) and len(cases) > 1:
        err(f"error: {len(cases)} cases found; --out must be a folder for several cases "
            f"(not {args.out})")
        return 1
    if not seg and args.out != "-" and Path(args.out).is_dir():
        err(f"error: --out {args.out} is a folder; classification writes one JSON-lines file")
        return 1
    try:
        lane.model(card)
    except ModelError as exc:
        err(f"error: {exc}")
        return 1
    ok = 0
    records = []
    targets = seg_targets(cases, args.out) if seg else [None] * len(cases)
    for case, target in zip(cases, targets):
        try:
            rec = (_segment_case(case, card, lane, args, tty, target) if seg
                   else _classify_case(case, card, lane, args, tty))
        except Exception as exc:  # one bad case never stops a folder
            err(f"skipped {case.name}: {reason(exc)}")
            continue
        ok += 1
        records.append(rec)
        if seg:
            print(f"wrote {rec['out']} ({case.name})", file=sys.stderr if args.out == "-"
                  else sys.stdout)
        elif args.out == "-":
            print(json.dumps(rec), flush=True)
    if not seg and args.out != "-" and records:
        from medviewer.core.atomic import atomic_write_text

        atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in records))
    if len(cases) > 1:
        err(f"{ok} of {len(cases)} cases done with {card.ref} on {device}")
    return 0 if ok else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``predict``; returns the exit code (2 for usage errors)."""
    from . import run_command

    return run_command(build_parser(), argv, cmd_predict)


if __name__ == "__main__":
    sys.exit(main())
