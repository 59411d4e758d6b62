"""Headless AI commands: ``predict`` (run a registry model on files) and ``models`` (list/import).

``medviewer predict --model NAME[:VERSION] PATH... --out OUT [--device auto|cpu|cuda|mps]
[--slice N]``: every PATH is a DICOM series folder or file, a NIfTI/NRRD/MHA volume, an image
file (PNG/JPEG/BMP/TIFF via Pillow; a DICOM radiograph) or a folder of them. Each image file,
each DICOM series and each volume file is one case. Classification writes JSON lines
``{"case", "class", "probabilities", "model"}`` to OUT (``-``: stdout); segmentation writes a
label map NIfTI per case (OUT is the file for one case, a folder for several) with a
``.labels.json`` sidecar (label names, model, warnings, case uncertainty). A case that cannot
be read or does not suit the model is skipped with a message; the exit code is 0 when at least
one case succeeded, 1 otherwise (2 for usage errors).

``medviewer models [list] [--json]`` lists the registry; ``medviewer models import FOLDER``
validates and copies a model folder into the user models folder (exit 1 with the reason when
refused). ``models versions NAME [--json]`` lists a model's versions (parent, validation metric,
active marked ``*``) and the pointer history; ``models promote NAME VERSION`` and ``models
rollback NAME [VERSION]`` move the active-version pointer (:mod:`medviewer.ai.versions`; exit 1
with the reason when refused). ``predict --model NAME`` uses the active version. Patient names
and IDs are never printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .cli_ai_cases import (TtyProgress, find_cases, is_labelmap_file, load_case, read_image,
                           seg_targets)

__all__ = ["main", "build_parser"]

MODEL_ACTIONS = ("list", "import", "versions", "promote", "rollback")
_OPERANDS = {"list": (0, 0), "import": (1, 1), "versions": (1, 1), "promote": (2, 2),
             "rollback": (1, 2)}

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="MedViewer AI commands.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{predict,models}")
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
    pm = sub.add_parser("models", help="list, import, promote or roll back models",
                        description="'models [list] [--json]', 'models import FOLDER', "
                                    "'models versions NAME [--json]', 'models promote NAME "
                                    "VERSION', 'models rollback NAME [VERSION]'.")
    pm.add_argument("action", nargs="?", default="list", choices=MODEL_ACTIONS)
    pm.add_argument("operands", nargs="*", metavar="ARG",
                    help="import: FOLDER; versions: NAME; promote: NAME VERSION; "
                         "rollback: NAME [VERSION] (default: the previously active version)")
    pm.add_argument("--json", action="store_true", help="with 'list'/'versions': JSON")
    pm.add_argument("--reason", default="", help="with 'promote'/'rollback': noted in the "
                                                 "pointer's history")
    return p


# ---------------------------------------------------------------------------- small helpers
def _err(message: str) -> None:
    print(f"medviewer: {message}", file=sys.stderr)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _registry():
    from medviewer.ai.registry import ModelRegistry

    return ModelRegistry()


# ---------------------------------------------------------------------------- predict
def _classify_case(case, card, model, device, args, tty) -> dict:
    from medviewer.ai.inference import classify, drive

    invert, window = False, None
    if case.image_path is not None:
        image = read_image(case.image_path)
    else:
        vol = load_case(case, tty)
        nz = vol.shape[0]
        if nz > 1 and args.slice is None:
            raise ValueError(f"a volume of {nz} slices; {card.ref} classifies 2D images "
                             f"(give --slice N to classify one slice)")
        k = 0 if args.slice is None else args.slice
        if not 0 <= k < nz:
            raise ValueError(f"--slice {k} is outside 0..{nz - 1}")
        image, invert = vol.array[k], bool(vol.invert)
        if vol.window is not None:
            window = (vol.window.center, vol.window.width)
    try:
        result = drive(classify(model, card, image, device, invert=invert, window=window), tty)
    finally:
        tty.done()
    return {"case": case.name, **result.to_dict()}


def _even_volume(vol, notes: list):
    if not vol.geometry.is_uneven:
        return vol
    from medviewer.core.resample import resample_even

    vol = resample_even(vol)
    notes.append(f"uneven slice spacing: the volume was resampled to even "
                 f"{vol.geometry.spacing[2]:g} mm slices first (a NIfTI label map cannot "
                 f"store uneven spacing); the label map is on that grid")
    return vol


def _segment_case(case, card, model, device, args, tty, out_path: Path) -> dict:
    from medviewer.ai.inference import drive, segment
    from medviewer.ai.uncertainty import case_score
    from medviewer.core.atomic import atomic_write_text
    from medviewer.io.labels_io import write_labelmap

    if case.image_path is not None:
        raise ValueError(f"{card.ref} segments volumes with known voxel spacing; "
                         f"{case.image_path.suffix} images have none")
    notes: list = []
    vol = _even_volume(load_case(case, tty), notes)
    if vol.is_rgb:
        raise ValueError("a colour image; the segmentation model expects grey CT/MR data")
    g = vol.geometry
    if args.slice is not None and not 0 <= args.slice < vol.shape[0]:
        raise ValueError(f"--slice {args.slice} is outside 0..{vol.shape[0] - 1}")
    spacing_zyx = (g.spacing[2], g.spacing[1], g.spacing[0])
    try:
        res = drive(segment(model, card, vol.array, spacing_zyx, device,
                            slice_index=args.slice), tty)
    finally:
        tty.done()
    z0, z1 = res.z_range
    score = case_score(res.entropy, res.labels[z0:z1]) if res.entropy is not None else None
    table = {i: name for i, name in enumerate(res.label_names) if i > 0}
    write_labelmap(res.labels, g, out_path, table)
    sidecar = {"case": case.name, "model": res.model_ref, "labels": [
        {"value": i, "name": n} for i, n in enumerate(res.label_names)],
        "slices": [z0, z1], "uncertainty": score, "warnings": notes + res.warnings,
        "preprocessing": res.preprocessing}
    atomic_write_text(_sidecar_path(out_path), json.dumps(sidecar, indent=2) + "\n")
    return {"case": case.name, "out": str(out_path), "labels": {
        n: int((res.labels == i).sum()) for i, n in enumerate(res.label_names) if i > 0}}


def _sidecar_path(out_path: Path) -> Path:
    name = out_path.name
    for suf in (".nii.gz", ".nii", ".nrrd"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return out_path.with_name(name + ".labels.json")


def cmd_predict(args) -> int:
    from medviewer.ai.architectures import ModelError
    from medviewer.ai.device import DeviceError, choose_device
    from medviewer.ai.registry import load_model

    try:
        device = choose_device(args.device, strict=True)
        card = _registry().get(args.model)
    except (ModelError, DeviceError) as exc:
        _err(f"error: {exc}")
        return 1
    tty = TtyProgress()
    cases, skipped = find_cases(args.paths, tty)
    for path, why in skipped:
        _err(f"skipped {path}: {why}")
    if not cases:
        _err("error: no images or volumes found in " + ", ".join(map(str, args.paths)))
        return 1
    seg = card.task == "segmentation"
    if seg and is_labelmap_file(args.out) and len(cases) > 1:
        _err(f"error: {len(cases)} cases found; --out must be a folder for several cases "
             f"(not {args.out})")
        return 1
    if not seg and args.out != "-" and Path(args.out).is_dir():
        _err(f"error: --out {args.out} is a folder; classification writes one JSON-lines file")
        return 1
    try:
        model = load_model(card, device=device)
    except ModelError as exc:
        _err(f"error: {exc}")
        return 1
    ok = 0
    records = []
    targets = seg_targets(cases, args.out) if seg else [None] * len(cases)
    for case, target in zip(cases, targets):
        try:
            rec = (_segment_case(case, card, model, device, args, tty, target) if seg
                   else _classify_case(case, card, model, device, args, tty))
        except Exception as exc:  # one bad case never stops a folder
            _err(f"skipped {case.name}: {_reason(exc)}")
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
        _err(f"{ok} of {len(cases)} cases done with {card.ref} on {device}")
    return 0 if ok else 1


# ---------------------------------------------------------------------------- models
def _card_record(reg, card) -> dict:
    shown = {k: v for k, v in card.metrics.items() if isinstance(v, (int, float))
             and not isinstance(v, bool) and k != "n"}
    return {"name": card.name, "version": card.version, "ref": card.ref, "task": card.task,
            "labels": list(card.labels), "metrics": shown,
            "architecture": card.architecture["name"], "folder": str(card.folder),
            "source": "built-in" if reg.is_builtin(card) else "user"}


def cmd_models(args) -> int:
    from medviewer.ai.architectures import ModelError

    lo, hi = _OPERANDS[args.action]
    if not lo <= len(args.operands) <= hi:
        usage = {"list": "models [list] [--json]", "import": "models import FOLDER",
                 "versions": "models versions NAME [--json]",
                 "promote": "models promote NAME VERSION",
                 "rollback": "models rollback NAME [VERSION]"}[args.action]
        _err(f"error: usage: medviewer {usage}")
        return 2
    reg = _registry()
    if args.action in ("versions", "promote", "rollback"):
        from medviewer.cli_ai_cases import model_versions_command

        return model_versions_command(reg, args, _err)
    if args.action == "import":
        try:
            card = reg.import_folder(args.operands[0])
        except (ModelError, OSError) as exc:
            _err(f"error: model folder refused: {_reason(exc)}")
            return 1
        print(f"imported {card.ref} into {card.folder}")
        return 0
    cards = reg.list()
    records = [_card_record(reg, c) for c in cards]
    problems = [{"folder": str(f), "problem": m} for f, m in reg.problems]
    if args.json:
        json.dump({"models": records, "refused": problems, "user_dir": str(reg.user_dir),
                   "builtin_dir": str(reg.builtin_dir)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not records:
        print(f"no models (built-in: {reg.builtin_dir}; user: {reg.user_dir})")
    for r in records:
        ms = ", ".join(f"{k} {v:.3f}" for k, v in list(r["metrics"].items())[:4])
        print(f"{r['ref']:<28} {r['task']:<15} {r['source']:<8} labels: "
              f"{', '.join(r['labels'])}")
        print(f"    {ms or 'no metrics'}  ({r['architecture']})  {r['folder']}")
    for p in problems:
        print(f"refused {p['folder']}: {p['problem']}", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``predict`` or ``models``; returns the exit code (2 for usage errors)."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        rc = cmd_predict(args) if args.command == "predict" else cmd_models(args)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
