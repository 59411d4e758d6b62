"""``medviewer predict``: run a model on files, through the app's own code path
(:mod:`medviewer.services.ai_runs`).

``medviewer predict --model NAME[:VERSION] PATH... --out OUT [--device auto|cpu|cuda|mps]
[--slice N] [--force]``: every PATH is a DICOM series folder or file, a NIfTI/NRRD/MHA volume, an image
file (PNG/JPEG/BMP/TIFF via Pillow; a DICOM radiograph) or a folder of them. Each image file,
each DICOM series and each volume file is one case. Classification writes JSON lines
``{"case", "class", "probabilities", "model", "in_domain", "ood_score", "forced"}`` to OUT
(``-``: stdout); segmentation writes a label map NIfTI per case (OUT is the file for one case,
a folder for several) with a ``.labels.json`` sidecar (label names, model, warnings, case
uncertainty, ``in_domain``, ``ood_score``, ``forced``, ``subject``: the study/series UIDs and
the patient's keyed pseudonym, or with ``--no-anonymise`` name and ID). A case outside the model's declared
domain (e.g. a radiograph given to a CT model) is refused with a one-line reason unless
``--force``; a case that cannot be read or does not suit the model is skipped with a message.
Exit code: 0 when at least one case succeeded; 2 when none did and a case was refused as
outside the model's domain (and for usage errors); 1 otherwise. Patient names and IDs are
never printed.

With ``--batch`` (or ``--list FILE``) OUT is a folder that a whole archive is predicted into,
resumably and by any number of torchrun processes: see :mod:`medviewer.cli.batch`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from medviewer.services.cases import find_cases, is_labelmap_file, seg_targets

from .progress import TtyProgress, err, reason, reporter

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="Run a model on files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{predict}")
    pp = sub.add_parser("predict", help="run a model on images or volumes",
                        description="Run a registry model on every case found in PATH.")
    pp.add_argument("--model", required=True, metavar="NAME[:VERSION]",
                    help="model name (its active version) or name:version, see 'medviewer models'")
    pp.add_argument("paths", nargs="*", metavar="PATH",
                    help="DICOM series/file, NIfTI/NRRD volume, PNG/JPEG image, or a folder")
    pp.add_argument("--out", required=True, metavar="OUT",
                    help="classification: JSON-lines file ('-' for stdout); segmentation: "
                         "label map .nii.gz for one case, or a folder; --batch: a folder")
    pp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    pp.add_argument("--slice", type=int, metavar="N",
                    help="only slice N (0-based along z) of each volume")
    pp.add_argument("--fp32", action="store_true",
                    help="full precision everywhere (default: bf16 on CPUs with native bf16 for "
                         "models whose labels were checked to agree with fp32; mixed "
                         "precision on GPUs)")
    pp.add_argument("--force", action="store_true",
                    help="run the model even on images outside its declared domain (the "
                         "output is marked 'forced')")
    pp.add_argument("--no-anonymise", action="store_true",
                    help="name the patient (DICOM name and ID) in the sidecars' 'subject'; by "
                         "default it holds a keyed pseudonym (the workspace's "
                         "pseudonym.key or $MEDVIEWER_PSEUDONYM_KEY) and the study/series UIDs")
    b = pp.add_argument_group("batch over an archive (resumable; splits the studies between "
                              "torchrun processes)")
    b.add_argument("--batch", action="store_true",
                   help="write per-study outputs, summary.jsonl and the resume state into the "
                        "--out folder; studies already done there are skipped")
    b.add_argument("--list", metavar="FILE",
                   help="a file of study paths, one per line (implies --batch)")
    b.add_argument("--redo", action="store_true", help="run every study again")
    b.add_argument("--skip-failed", action="store_true",
                   help="do not retry studies that failed in an earlier run")
    b.add_argument("--run-id", default="", metavar="ID",
                   help="one id shared by all processes of this run (default: torchrun's "
                        "rendezvous id)")
    b.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads per process (default: the cores / the processes on "
                        "this machine)")
    return p


def _classify_case(case, card, lane, args, tty) -> dict:
    from medviewer.services.case_predict import classify_case

    pred = classify_case(case, card, lane, z=args.slice, force=args.force,
                         reporter=reporter(tty), done=tty.done)
    return {"case": case.name, **pred.run.to_dict()}


def _segment_case(case, card, lane, args, tty, out_path: Path) -> dict:
    from medviewer.services.case_predict import segment_case, write_segmentation

    pred = segment_case(case, card, lane, z=args.slice, force=args.force,
                        reporter=reporter(tty), done=tty.done)
    sidecar = write_segmentation(pred, out_path, case.name, anonymise=not args.no_anonymise)
    run = pred.run
    counts = _label_counts(run.labels, len(run.label_names))
    return {"case": case.name, "out": str(out_path), "labels": {
        n: counts[i] for i, n in enumerate(run.label_names) if i > 0},
        "ood_info": {"in_domain": sidecar["in_domain"], "ood_score": sidecar["ood_score"],
                     "forced": run.forced}}


def _label_counts(labels, n: int) -> list:
    """Voxels per label value 0..n-1, slice by slice (no whole-volume temporaries)."""
    import numpy as np

    counts = np.zeros(max(n, 256), np.int64)
    for sl in labels:
        counts += np.bincount(sl.reshape(-1), minlength=counts.size)[:counts.size]
    return [int(c) for c in counts[:n]]


def cmd_predict(args) -> int:
    if args.batch or args.list:
        from .batch import cmd_batch

        return cmd_batch(args)
    if args.redo or args.skip_failed or args.run_id or args.threads:
        err("error: --redo, --skip-failed, --run-id and --threads go with --batch")
        return 2
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        err("error: under torchrun give --batch (each process would run every case)")
        return 2
    if not args.paths:
        err("error: give at least one PATH")
        return 2
    from medviewer.services.ai_runs import ModelLane
    from medviewer.services.models import ModelCatalog, ModelError

    from medviewer.services.ai_runs import cpu_cores

    lane = ModelLane(args.device, strict=True, threads=cpu_cores(),  # no GUI to spare a core
                     precision="fp32" if args.fp32 else "auto")
    from medviewer.services.models import require_automatic

    try:
        card = ModelCatalog().get(args.model)
        require_automatic(card)
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
    from medviewer.services.model_fit import DomainMismatch

    ok = refused = 0
    records = []
    targets = seg_targets(cases, args.out) if seg else [None] * len(cases)
    for case, target in zip(cases, targets):
        try:
            rec = (_segment_case(case, card, lane, args, tty, target) if seg
                   else _classify_case(case, card, lane, args, tty))
        except DomainMismatch as exc:
            refused += 1
            err(f"refused {case.name}: {card.ref} does not fit this image: {exc.fit.reason} "
                f"(--force runs it anyway)")
            continue
        except Exception as exc:  # one bad case never stops a folder
            err(f"skipped {case.name}: {reason(exc)}")
            continue
        ok += 1
        records.append(rec)
        _warn_ood(case, rec.get("ood_info", rec))
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
    return 0 if ok else (2 if refused else 1)


def _warn_ood(case, rec: dict) -> None:
    if rec.get("in_domain") is False:
        err(f"warning: {case.name} is outside what the model was trained on "
            f"(ood_score {rec['ood_score']:.2f})")
    if rec.get("forced"):
        err(f"warning: {case.name}: forced run on an image outside the model's domain")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``predict``; returns the exit code (2 for usage errors)."""
    from . import run_command

    return run_command(build_parser(), argv, cmd_predict)


if __name__ == "__main__":
    sys.exit(main())
