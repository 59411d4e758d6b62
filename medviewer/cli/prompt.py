"""``medviewer prompt``: interactive segmentation from the command line, through
:mod:`medviewer.services.interactive` (the app's own code path).

``medviewer prompt IMAGE --point-mm X,Y,Z[:neg] ... [--box-mm X0,Y0,X1,Y1,Z] [--3d]
[--engine auto|learned|classical] --out MASK.nii.gz``: points and boxes in patient LPS mm; the mask
(label 1) is written on the image's grid and geometry.
``medviewer prompt IMAGE --simulate REF.nii.gz [--label N] [--slice Z] [--max-clicks N] [--3d]
--json``: the standard click protocol against a reference mask; prints the Dice after each
click (and NoC@85/NoC@90) as JSON. With ``--3d`` the protocol is 3D: the first click on the
slice, propagated, then each click at the centre of the largest 3D error region, on whatever
slice, correcting the 3D result there; the Dice is 3D. ``--engine auto`` (the default) uses
the learned promptable model where it is installed, else the classical engine. Exit codes:
0 done, 1 failed, 2 usage errors and ``--engine learned`` without its model. Patient names and
IDs are never printed."""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from .progress import err

__all__ = ["main", "build_parser"]


def _point(text: str):
    body, _, sign = text.partition(":")
    if sign not in ("", "pos", "neg"):
        raise argparse.ArgumentTypeError(f"{text!r}: the sign is ':pos' or ':neg'")
    xyz = _floats(body, 3)
    return xyz, sign != "neg"


def _floats(text: str, n: int):
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != n:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {n} comma-separated numbers")
    return vals


def _box(text: str):
    x0, y0, x1, y1, z = _floats(text, 5)
    return (x0, y0, z), (x1, y1, z)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="Interactive segmentation.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{prompt}")
    pp = sub.add_parser("prompt", help="segment an object from clicks and boxes",
                        description="Segment one object from clicks and boxes in LPS mm.")
    pp.add_argument("image", metavar="IMAGE", help="NIfTI/NRRD/MHA volume or DICOM series")
    pp.add_argument("--point-mm", action="append", type=_point, default=[],
                    metavar="X,Y,Z[:neg]", help="a click in patient LPS mm (':neg' negative); write "
                         "--point-mm=X,Y,Z when X is negative")
    pp.add_argument("--box-mm", action="append", type=_box, default=[],
                    metavar="X0,Y0,X1,Y1,Z", help="a box on the slice at LPS z (mm)")
    pp.add_argument("--3d", dest="three_d", action="store_true",
                    help="carry the slice's mask through the neighbouring slices (with "
                         "--simulate: the 3D click protocol, clicks on any slice, 3D Dice)")
    pp.add_argument("--engine", default="auto", choices=("auto", "classical", "learned"),
                    help="auto (default): the learned model where it is installed, else the "
                         "classical engine")
    pp.add_argument("--out", metavar="MASK.nii.gz", help="where to write the mask")
    pp.add_argument("--simulate", metavar="REF", help="run the click protocol against REF")
    pp.add_argument("--label", type=int, help="with --simulate: the reference label value "
                                              "(default: every label > 0)")
    pp.add_argument("--slice", type=int, metavar="Z",
                    help="with --simulate: the slice (default: largest reference area)")
    pp.add_argument("--max-clicks", type=int, default=20, metavar="N")
    pp.add_argument("--json", action="store_true", help="with --simulate: print JSON")
    return p


def _run(args) -> int:
    from medviewer.services import interactive as svc

    if args.simulate is None and (args.out is None or not (args.point_mm or args.box_mm)):
        err("medviewer prompt: error: give --out and at least one --point-mm or --box-mm "
            "(or --simulate REF)")
        return 2
    try:
        args.engine = svc.resolve_engine(args.engine)
    except svc.NoLearnedModel as exc:
        err(f"medviewer prompt: {exc}")
        return 2
    try:
        vol = svc.load_volume(args.image)
        if args.simulate is not None:
            ref = svc.reference_mask(args.simulate, vol.geometry, args.label)
            res = svc.simulate(vol, ref, args.max_clicks, z=args.slice, three_d=args.three_d,
                               engine=args.engine)
            out = dict(res.to_dict(), engine=args.engine)
            if args.json:
                print(json.dumps(out))
            else:
                for k, d in enumerate(out["dice"], 1):
                    print(f"click {k}: dice {d:.4f}")
                print(f"NoC@85 {out['noc85']}  NoC@90 {out['noc90']}")
                for note in out["warnings"]:
                    err(f"medviewer prompt: warning: {note}")
            return 0
        prompts = svc.prompts_from_mm(vol.geometry, args.point_mm, args.box_mm)
        mask = svc.segment(vol, prompts, three_d=args.three_d, engine=args.engine)
        note = svc.engine_spacing(vol).note
        if note:
            err(f"medviewer prompt: warning: {note}")
        from medviewer.services.annotations import write_label_file

        write_label_file(mask.astype("uint8"), vol.geometry, args.out,
                         {1: "object"})
        err(f"{args.engine} engine: {int(mask.sum())} voxels on "
            f"{int(mask.any(axis=(1, 2)).sum())} slice(s) -> {args.out}")
        return 0
    except ValueError as exc:
        err(f"medviewer prompt: {exc}")
        return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``prompt``; returns the exit code."""
    from . import run_command

    return run_command(build_parser(), argv, _run)
