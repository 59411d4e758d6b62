"""``medviewer info`` (what is in these paths) and ``medviewer convert`` (a series to NIfTI).

``medviewer info PATH... [--json]`` scans files/folders/DICOMDIRs, loads every image series
and prints its modality, description, shape (z, y, x), spacing, origin and direction (LPS),
orientation code and warnings, then every non-image object and every skipped file with the
reason. Exit 0 when at least one image series loaded, 1 otherwise, 2 for usage errors.

``medviewer convert PATH OUT.nii.gz [--series UID-or-index] [--resample [--slice-spacing MM]]
[--no-anonymise]`` writes one series (default: the first, numbered as ``info`` lists them) as
NIfTI (its header's description never repeats the patient's name or ID unless
``--no-anonymise``).

Patient names and IDs are never printed: only series-level fields are reported, and a
description that repeats the patient's name or ID shows "(hidden)" in its place.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from medviewer.core.deid import identity_values, redact

from .progress import TtyProgress, reason, reporter

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="MedViewer headless commands.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{info,convert}")
    pi = sub.add_parser("info", help="list the image series, non-image objects and skipped files",
                        description="Scan paths and describe every series found.")
    pi.add_argument("paths", nargs="+", metavar="PATH",
                    help="DICOM files or folders, DICOMDIR, NIfTI, NRRD, MHA/MHD, MGH/MGZ")
    pi.add_argument("--json", action="store_true", help="print one JSON document")
    pc = sub.add_parser("convert", help="write one series as NIfTI (.nii or .nii.gz)",
                        description="Write one series as NIfTI (RAS affine, gzip by suffix).")
    pc.add_argument("path", metavar="PATH", help="a file or folder holding the series")
    pc.add_argument("out", metavar="OUT.nii.gz", help="output file (.nii or .nii.gz)")
    pc.add_argument("--series", metavar="UID-or-index",
                    help="series index as listed by 'info', its key or SeriesInstanceUID "
                         "(or a unique prefix); default: the first image series")
    pc.add_argument("--resample", action="store_true",
                    help="resample uneven slice spacing to even spacing (linear along z)")
    pc.add_argument("--slice-spacing", type=float, metavar="MM",
                    help="with --resample: the new slice spacing (default: the median step)")
    pc.add_argument("--no-anonymise", action="store_true",
                    help="keep a patient name or ID that the series description repeats in "
                         "the NIfTI header (hidden by default)")
    return p


def _shown(text: str, entry, volume=None) -> str:
    """``text`` with the patient's name and ID (as the series or volume has them) hidden."""
    secret = [p for p in entry.patient_label.replace("^", " ").split() if len(p) >= 3]
    if volume is not None:
        secret += identity_values(volume.meta or {})
    return redact(text or "", secret)


def _series_record(index: int, entry, volume=None, error: Optional[str] = None) -> dict:
    rec = {"index": index, "key": entry.key, "kind": entry.kind, "modality": entry.modality,
           "description": _shown(entry.description, entry), "series_uid": entry.series_uid,
           "series_number": entry.series_number, "n_images": entry.n_images,
           "n_frames": entry.n_frames, "notes": list(entry.notes), "error": error}
    if volume is not None:
        rec.update(volume.geometry.to_dict())
        rec["modality"] = volume.modality or entry.modality
        rec["description"] = _shown(volume.description or entry.description, entry, volume)
        rec.update({"dtype": str(volume.array.dtype), "rgb": volume.is_rgb,
                    "units": volume.units, "invert": volume.invert,
                    "tilt_degrees": round(volume.geometry.tilt_degrees(), 3),
                    "warnings": list(volume.warnings)})
    return rec


def _scan(paths: Sequence[str], tty: TtyProgress):
    from medviewer.services.studies import scan

    try:
        return scan(list(paths), reporter(tty))
    finally:
        tty.done()


def _load(entry, tty: TtyProgress):
    from medviewer.services.studies import load

    try:
        return load(entry, reporter(tty))
    finally:
        tty.done()


def _fmt(values, digits: int = 4) -> str:
    return " ".join(f"{float(v) + 0.0:.{digits}g}" for v in values)


def _print_human(doc: dict, out) -> None:
    series = doc["series"]
    print(f"{len(series)} image series, {len(doc['non_image'])} non-image objects, "
          f"{len(doc['skipped'])} skipped files", file=out)
    for rec in series:
        print(f"\n[{rec['index']}] {rec['modality'] or '?'}  {rec['description'] or '(no description)'}"
              f"  ({rec['kind']}, {rec['n_images']} files, {rec['n_frames']} frames)", file=out)
        print(f"    key: {rec['key']}", file=out)
        if rec["error"]:
            print(f"    NOT LOADED: {rec['error']}", file=out)
            continue
        z, y, x = rec["shape_zyx"]
        extra = "  RGB" if rec["rgb"] else ""
        units = f"  units {rec['units']}" if rec["units"] else ""
        print(f"    shape (z,y,x): {z} x {y} x {x}  dtype {rec['dtype']}{units}{extra}", file=out)
        print(f"    spacing (x,y,z) mm: {_fmt(rec['spacing_xyz'], 6)}", file=out)
        if "slice_offsets_mm" in rec:
            print(f"    uneven slice offsets mm: {_fmt(rec['slice_offsets_mm'], 6)}", file=out)
        print(f"    origin LPS mm: {_fmt(rec['origin_lps'], 8)}", file=out)
        cols = list(zip(*rec["direction_lps"]))
        print("    direction LPS: x " + "(" + _fmt(cols[0]) + ")  y (" + _fmt(cols[1])
              + ")  z (" + _fmt(cols[2]) + ")", file=out)
        tilt = f"  gantry tilt {rec['tilt_degrees']:g} deg" if rec["tilt_degrees"] > 0.01 else ""
        print(f"    orientation: {rec['orientation']}{tilt}", file=out)
        for note in rec["notes"]:
            print(f"    note: {note}", file=out)
        for w in rec["warnings"]:
            print(f"    warning: {w}", file=out)
    if doc["non_image"]:
        print("\nNon-image objects:", file=out)
        for n in doc["non_image"]:
            print(f"    {n['kind']}  {n['modality']}  {n['path']}", file=out)
    if doc["skipped"]:
        print("\nSkipped files:", file=out)
        for s in doc["skipped"]:
            print(f"    {s['path']}: {s['reason']}", file=out)


def cmd_info(args, out=None) -> int:
    out = out or sys.stdout
    tty = TtyProgress()
    cat = _scan(args.paths, tty)
    records = []
    loaded = 0
    for i, entry in enumerate(cat.series):
        try:
            vol = _load(entry, tty)
        except Exception as exc:  # report and go on: info describes what it can
            records.append(_series_record(i, entry, error=reason(exc)))
            continue
        loaded += 1
        records.append(_series_record(i, entry, vol))
        del vol
    doc = {"series": records,
           "non_image": [{"path": n.path, "kind": n.kind, "modality": n.modality,
                          "sop_class_uid": n.sop_class_uid, "series_uid": n.series_uid}
                         for n in cat.non_image],
           "skipped": [{"path": s.path, "reason": s.reason} for s in cat.skipped]}
    if args.json:
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        _print_human(doc, out)
    return 0 if loaded else 1


def cmd_convert(args, out=None) -> int:
    from medviewer.core.resample import resample_even
    from medviewer.services.studies import WriteError, nifti_suffix, write_nifti

    out = out or sys.stdout
    if not nifti_suffix(args.out):
        return _fail(f"output must end in .nii or .nii.gz: {args.out}")
    if args.slice_spacing is not None and not args.resample:
        return _fail("--slice-spacing needs --resample")
    tty = TtyProgress()
    cat = _scan([args.path], tty)
    if not cat.series:
        why = f" ({len(cat.skipped)} files skipped; run 'medviewer info' for reasons)" \
            if cat.skipped else ""
        return _fail(f"no image series found in {args.path}{why}")
    if args.series is None:
        index, entry = 0, cat.series[0]
    else:
        try:
            entry = cat.find(args.series)
        except KeyError as exc:
            listing = "; ".join(f"[{i}] {e.modality} {_shown(e.description, e)} {e.key}"
                                for i, e in enumerate(cat.series))
            return _fail(f"--series: {exc.args[0]}. Series: {listing}")
        index = cat.series.index(entry)
    try:
        vol = _load(entry, tty)
    except Exception as exc:
        return _fail(f"cannot load series [{index}]: {reason(exc)}")
    if vol.geometry.is_uneven and not args.resample:
        offs = vol.geometry.slice_offsets
        steps = [b - a for a, b in zip(offs, offs[1:])]
        return _fail(f"series [{index}] has uneven slice spacing ({min(steps):g}-{max(steps):g} mm "
                     f"steps); NIfTI cannot store that. Rerun with --resample to resample it to "
                     f"even spacing (linear along z), optionally with --slice-spacing MM")
    if args.resample:
        try:
            vol = resample_even(vol, args.slice_spacing)
        except ValueError as exc:
            return _fail(str(exc))
    try:
        path = write_nifti(vol, args.out, anonymise=not args.no_anonymise)
    except (WriteError, OSError) as exc:
        return _fail(f"cannot write {args.out}: {reason(exc)}")
    z, y, x = vol.shape
    print(f"wrote {path}: series [{index}] {vol.modality} "
          f"{_shown(vol.description, entry, vol)!r}, "
          f"{x} x {y} x {z} voxels (x,y,z), spacing {_fmt(vol.geometry.spacing, 6)} mm", file=out)
    for w in vol.warnings:
        print(f"warning: {w}", file=out)
    return 0


def _fail(message: str) -> int:
    print(f"medviewer: error: {message}", file=sys.stderr)
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``info`` or ``convert``; returns the exit code (2 for usage errors)."""
    from . import run_command

    return run_command(build_parser(), argv, lambda a: cmd_info(a) if a.command == "info"
                       else cmd_convert(a))
