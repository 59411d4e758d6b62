"""``medviewer findings IMAGE LABELS --out OUT``: every connected component of every label of a
label map (NIfTI/NRRD/MHA on the image's grid, or a DICOM SEG) measured on its image
(:mod:`medviewer.services.findings`, the app's Findings dock's code path) and written as CSV,
JSON or, for a DICOM image, a DICOM SR (TID 1500) with the DICOM SEG it references.

Exit codes: 0 written, 2 bad input, 1 other errors. Patient names and IDs are never printed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from .progress import TtyProgress, err, reason, reporter

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="MedViewer findings.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{findings}")
    pf = sub.add_parser("findings", help="measure every connected component of a label map",
                        description="Each connected component of each label becomes a finding: "
                                    "slice range, bounding box, volume (ml), longest axial "
                                    "diameter and the longest perpendicular one (mm), mean and "
                                    "SD of the image (HU for CT).")
    pf.add_argument("image", metavar="IMAGE", help="a volume file or a DICOM series folder")
    pf.add_argument("labels", metavar="LABELS", help="a label map on the image's grid "
                                                     "(NIfTI/NRRD/MHA) or a DICOM SEG (.dcm)")
    pf.add_argument("--out", required=True, metavar="OUT",
                    help=".csv, .json, or .dcm: a DICOM SR (and OUT_seg.dcm, the DICOM SEG it "
                         "references; DICOM images only)")
    pf.add_argument("--connectivity", type=int, choices=(6, 26), default=26)
    pf.add_argument("--min-voxels", type=int, default=1, metavar="N",
                    help="leave out components smaller than N voxels")
    pf.add_argument("--resample", action="store_true",
                    help="put a label map on another grid onto the image's (nearest neighbour)")
    pf.add_argument("--no-anonymise", dest="anonymise", action="store_false",
                    help="JSON/SR: keep the patient's name and ID (default: a pseudonym)")
    pf.add_argument("--json", action="store_true", help="print a JSON summary")
    return p


def _run(args) -> int:
    from medviewer.services import findings as svc

    suffix = Path(args.out).suffix.lower()
    if suffix not in (".csv", ".json", ".dcm"):
        err(f"findings: --out must end in .csv, .json or .dcm, not {Path(args.out).name!r}")
        return 2
    tty = TtyProgress()
    try:
        vol, labels, table = svc.load_image_and_labels(args.image, args.labels, args.resample,
                                                       reporter(tty))
        found = svc.case_findings(vol, labels, table, connectivity=args.connectivity,
                                  min_voxels=max(1, args.min_voxels), reporter=reporter(tty))
        tty.done()
        if suffix == ".dcm":
            out, seg = svc.export_findings_sr(found, labels, table, vol, args.out,
                                              anonymise=args.anonymise)
        else:
            out, seg = svc.export_findings(found, args.out, vol, anonymise=args.anonymise), None
    except (ValueError, OSError) as exc:
        tty.done()
        err(f"findings: {reason(exc)}")
        return 2 if isinstance(exc, ValueError) else 1
    if args.json:
        print(json.dumps({"findings": len(found), "out": str(out),
                          "seg": None if seg is None else str(seg),
                          "connectivity": args.connectivity}))
    else:
        for f in found:
            mean = "" if f.mean is None else f"  {f.mean:.1f} ± {f.sd:.1f} {f.units}".rstrip()
            print(f"{f.number:4d}  {f.name[:28]:<28} #{f.component:<3d} slices "
                  f"{f.slices[0]}-{f.slices[1]}  {f.volume_ml:10.3f} ml  long {f.long_mm:6.1f} mm"
                  f"  short {f.short_mm:6.1f} mm{mean}")
        err(f"{len(found)} findings -> {out}" + (f" (SEG {seg})" if seg else ""))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``findings``; returns the exit code."""
    from . import run_command

    return run_command(build_parser(), argv, _run)
