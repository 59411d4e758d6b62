"""``medviewer register FIXED MOVING OUT.nii.gz``: register a moving series to a fixed one
(:mod:`medviewer.services.registration`) and write the moving image resampled onto the fixed
image's grid.

Exit codes: 0 written, 2 bad input (unreadable series, unknown kind, bad file names), 130
cancelled (Ctrl+C; nothing written), 1 other errors. ``--json`` prints the provenance
(kind, final metric, iterations, seconds). Patient names and IDs are never printed."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from .progress import TtyProgress, err, reason, reporter

__all__ = ["main", "build_parser"]

_EPILOG = """\
The transform maps points of FIXED to MOVING (ITK's convention) and is saved with --transform
(.tfm, .txt or .h5; its provenance beside it as FILE.json). A label map drawn on MOVING follows
with --labels MOVING_LABELS --labels-out OUT_LABELS (nearest neighbour, values kept).
Kinds: rigid (rotation + translation), affine (+ scaling and shear, after rigid), deformable
(a B-spline with control points every 50 mm, after affine). The metric is Mattes mutual
information, so MR to CT works as well as CT to CT.

  medviewer register baseline/ followup/ followup_on_baseline.nii.gz --kind rigid \\
      --transform followup_to_baseline.tfm
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="MedViewer registration.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{register}")
    pr = sub.add_parser("register", help="register a moving series to a fixed one",
                        description="Register MOVING to FIXED and write MOVING resampled onto "
                                    "FIXED's grid.", epilog=_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("fixed", metavar="FIXED", help="the reference series (file or DICOM folder)")
    pr.add_argument("moving", metavar="MOVING", help="the series to align to it")
    pr.add_argument("out", metavar="OUT.nii.gz", help="MOVING resampled onto FIXED's grid")
    pr.add_argument("--kind", choices=("rigid", "affine", "deformable"), default="rigid",
                    help="the transform (default rigid)")
    pr.add_argument("--transform", metavar="OUT.tfm", help="save the transform here")
    pr.add_argument("--labels", metavar="MOVING_LABELS",
                    help="a label map on MOVING's grid to carry over (needs --labels-out)")
    pr.add_argument("--labels-out", metavar="OUT_LABELS.nii.gz",
                    help="where the carried-over label map goes")
    pr.add_argument("--levels", type=int, default=3, choices=(1, 2, 3),
                    help="resolution levels (default 3: coarse to fine)")
    pr.add_argument("--json", action="store_true", help="print the provenance as JSON")
    return p


def cmd_register(args) -> int:
    from medviewer.jobs import Cancelled
    from medviewer.services import registration as reg

    if bool(args.labels) != bool(args.labels_out):
        err("error: --labels and --labels-out go together")
        return 2
    if not args.out.lower().endswith((".nii", ".nii.gz")):
        err("error: OUT must end in .nii or .nii.gz")
        return 2
    tty = TtyProgress()
    try:
        fixed, moving = reg.open_series(args.fixed), reg.open_series(args.moving)
        labels = reg.open_series(args.labels) if args.labels else None
        res = reg.register(fixed, moving, args.kind, reporter(tty), levels=args.levels)
        out = reg.resample_volume(moving, fixed.geometry, res.transform)
        reg.write_series(out, args.out)
        if labels is not None:
            carried = reg.resample_labels(labels.array, labels.geometry, fixed.geometry,
                                          res.transform)
            reg.write_labels(carried, fixed.geometry, args.labels_out)
        if args.transform:
            reg.save_transform(res, args.transform)
    except (Cancelled, KeyboardInterrupt):
        tty.done()
        err("cancelled: nothing more was written")
        return 130
    except ValueError as exc:  # RegistrationError, LoadError, WriteError: bad input
        tty.done()
        err(f"error: {reason(exc)}")
        return 2
    except (OSError, RuntimeError) as exc:
        tty.done()
        err(f"error: {reason(exc)}")
        return 1
    tty.done()
    if args.json:
        print(json.dumps(dict(res.provenance, out=args.out, transform=args.transform),
                         indent=2, sort_keys=True))
    else:
        print(f"registered ({res.kind}) in {res.seconds:.1f} s, {res.iterations} iterations, "
              f"final metric {res.metric_value:.4f}: wrote {args.out}"
              + (f", {args.labels_out}" if labels is not None else "")
              + (f", {args.transform}" if args.transform else ""))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``register``; returns the exit code (2 for usage errors)."""
    from . import run_command

    return run_command(build_parser(), argv, cmd_register)


if __name__ == "__main__":
    sys.exit(main())
