"""``medviewer labels import WORKSPACE FILE.csv``: bring existing labels into a workspace as a
person's final records (:mod:`medviewer.services.label_import`), so a team with a spreadsheet
of findings can train a model at once with ``medviewer finetune --workspace WORKSPACE``.

Exit codes: 0 imported (or nothing new), 2 bad input (every bad row listed with its line
number on stderr; nothing is stored), 130 cancelled (Ctrl+C; nothing is stored), 1 other
errors. A JSON summary with ``--json``. Patient names and IDs are never printed.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from .progress import TtyProgress, err, reason, reporter

__all__ = ["main", "build_parser"]

_EPILOG = """\
CSV forms (UTF-8, comma separated; '#' lines and blank lines skipped; paths relative to the CSV
file unless absolute). A header row is optional; it is recognised by its first cell (path,
image, image_path, file or filename), and then columns are found by name.

  case labels (classification):   path,label            e.g.  scans/a01.png,axial
                                  path,label,slice      one slice (0-based) of a volume
      path: an image file (PNG/JPEG/BMP/TIFF), a DICOM file, a folder with one DICOM series,
      or a NIfTI/NRRD/MHA volume. Several slices of one volume may be labelled on several rows.

  label maps (segmentation):      image_path,labelmap_path
      image: a volume file, DICOM file or DICOM series folder; label map: NIfTI/NRRD/MHA on
      the image's grid (--resample: nearest-neighbour onto it otherwise). Label names: from
      --labels (values 1, 2, ... in order, or VALUE=NAME pairs: other values are background),
      else the file (NRRD segments), else the model's labels (--model: value i is the model's
      label i). A value without a name is an error.

Every row becomes (part of) a 'final' record by a person, marked "imported from FILE" with
its line numbers. Nothing is stored unless every row is good. Importing the same file again
adds nothing.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="MedViewer labels.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{labels}")
    pl = sub.add_parser("labels", help="import labels into a workspace",
                        description="'labels import WORKSPACE FILE.csv': existing labels as a "
                                    "person's final records.",
                        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    pl.add_argument("action", choices=("import",))
    pl.add_argument("workspace", metavar="WORKSPACE", help="the label workspace folder "
                                                           "(created when missing)")
    pl.add_argument("file", metavar="FILE.csv", help="the labels (see below)")
    pl.add_argument("--model", metavar="NAME[:VERSION]",
                    help="the model the labels are for: only its labels are accepted (and "
                         "label-map values are its label indices unless named otherwise)")
    pl.add_argument("--kind", choices=("auto", "case", "labelmap"), default="auto",
                    help="case labels or label maps (default: from the header or the files)")
    pl.add_argument("--labels", metavar="NAME1,NAME2,...",
                    help="label maps: the names of values 1, 2, ..., or VALUE=NAME pairs "
                         "(e.g. 5=liver,1=spleen: every other value is background)")
    pl.add_argument("--resample", action="store_true",
                    help="label maps on another grid than their image: resample them onto it "
                         "(nearest neighbour) instead of refusing them")
    pl.add_argument("--annotator", default=None,
                    help="the person recorded as the source (default: the login name)")
    pl.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def cmd_labels(args) -> int:
    from medviewer.jobs import Cancelled
    from medviewer.services.label_import import LabelImportError, import_labels
    from medviewer.services.models import ModelCatalog, ModelError
    from medviewer.services.workspace import Workspace

    model_labels, kind = None, args.kind
    if args.model:
        try:
            card = ModelCatalog().get(args.model)
        except ModelError as exc:
            err(f"error: {reason(exc)}")
            return 2
        want = {"classification": "case", "segmentation": "labelmap"}.get(card.task)
        if want is None or kind not in ("auto", want):
            err(f"error: {card.ref} is a {card.task} model; it takes "
                f"{'no imported labels' if want is None else want + ' labels'}")
            return 2
        model_labels, kind = list(card.labels), want
    names = [x.strip() for x in (args.labels or "").split(",") if x.strip()] or None
    tty = TtyProgress()
    workspace = Workspace(folder=args.workspace)
    try:
        result = import_labels(workspace.store, args.file, kind=kind, model_labels=model_labels,
                               label_names=names, annotator=args.annotator,
                               resample=args.resample, reporter=reporter(tty))
    except LabelImportError as exc:
        tty.done()
        err(f"error: {exc}")
        return 2
    except (Cancelled, KeyboardInterrupt):
        tty.done()
        err("cancelled: nothing was imported")
        return 130
    except (ValueError, OSError) as exc:
        tty.done()
        err(f"error: {reason(exc)}")
        return 1
    finally:
        workspace.close()
    tty.done()
    if args.json:
        print(json.dumps(dict(result.to_dict(), workspace=str(workspace.folder)), indent=2))
        return 0
    what = "label maps" if result.kind == "labelmap" else "case labels"
    print(f"imported {what} from {args.file}: {result.rows} row(s), {result.images} image(s); "
          f"{result.added} new final record(s), {result.unchanged} already there")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``labels``; returns the exit code (2 for usage errors)."""
    from . import run_command

    return run_command(build_parser(), argv, cmd_labels)


if __name__ == "__main__":
    sys.exit(main())
