"""Composition root: parses the command line and runs a headless command (:mod:`medviewer.cli`)
or the GUI with the app's shared services (Session, job runner, Workspace with its label store,
model catalogue: :meth:`AppServices.create`) handed to the main window and its features."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from medviewer import __version__

from medviewer.cli import COMMANDS


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="medviewer",
        description="MedViewer: tri-planar DICOM / NIfTI / NRRD viewer.",
        epilog="Headless commands: 'medviewer info PATH... [--json]', "
               "'medviewer convert PATH OUT.nii.gz [--series N] [--resample]', "
               "'medviewer predict --model NAME[:VERSION] PATH --out OUT', 'medviewer models', "
               "'medviewer models promote|rollback NAME [VERSION]', "
               "'medviewer finetune --workspace DIR --model NAME[:VERSION]'. "
               "Run 'medviewer info -h' for details.")
    p.add_argument("paths", nargs="*", help="DICOM files or folders, DICOMDIR, NIfTI, NRRD, MHA, MGZ")
    p.add_argument("--demo", action="store_true",
                   help="open the bundled demo studies (chest radiograph, chest CT when available)")
    p.add_argument("--screenshot", metavar="PNG",
                   help="render the main window to PNG once loading finished, then exit "
                        "(patient names, IDs and dates hidden in it)")
    p.add_argument("--no-anonymise", action="store_true",
                   help="with --screenshot: show the patient details in the PNG")
    p.add_argument("--layout", choices=("tri", "single"), default=None,
                   help="start in tri-planar or single-view layout (default: last used)")
    p.add_argument("--version", action="version", version=f"medviewer {__version__}")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        from medviewer.cli import main as cli_main

        return cli_main(args)
    ns = _gui_parser().parse_args(args)
    from medviewer.services.context import AppServices
    from medviewer.ui.launch import run_gui

    return run_gui(ns.paths, demo=ns.demo, screenshot=ns.screenshot, layout=ns.layout,
                   compose=AppServices.create, anonymise=not ns.no_anonymise)


if __name__ == "__main__":
    sys.exit(main())
