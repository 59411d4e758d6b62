"""The command line: one module per command group, each a thin layer over
:mod:`medviewer.services` (the same code paths as the app).

- ``info``: ``medviewer info PATH... [--json]``, ``medviewer convert PATH OUT.nii.gz``
- ``predict``: ``medviewer predict --model NAME[:VERSION] PATH... --out OUT`` (``--batch``: a
  resumable, multi-process run over an archive into one folder)
- ``models``: ``medviewer models [list|import|new|versions|promote|rollback|check-precision]``
- ``labels``: ``medviewer labels import WORKSPACE FILE.csv [--model NAME]``
- ``finetune``: ``medviewer finetune --workspace W --base NAME[:VERSION]``
- ``prompt``: ``medviewer prompt IMAGE --point-mm X,Y,Z[:neg] --out MASK.nii.gz``
- ``findings``: ``medviewer findings IMAGE LABELS --out OUT.csv|.json|.dcm``
- ``pacs``: ``medviewer pacs echo|find|get|send`` (DIMSE ``--host/--port/--called-aet`` or
  DICOMweb ``--url``)
- ``register``: ``medviewer register FIXED MOVING OUT.nii.gz [--kind rigid|affine|deformable]
  [--transform OUT.tfm] [--labels L --labels-out OUT_L]``

Patient names and IDs are never printed."""
from __future__ import annotations

import os
import sys
from typing import Callable, Optional, Sequence

COMMANDS = {"info": "info", "convert": "info", "predict": "predict", "models": "models",
            "labels": "labels", "finetune": "finetune", "prompt": "prompt", "pacs": "pacs",
            "register": "register", "findings": "findings"}

__all__ = ["COMMANDS", "main", "run_command"]


def run_command(parser, argv: Optional[Sequence[str]], command: Callable) -> int:
    """Parse ``argv`` and run ``command(args)``; the exit code (2 for usage errors, 0 for
    --help; a reader that left the pipe early is not an error)."""
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    try:
        rc = command(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return rc
    except BrokenPipeError:  # e.g. `medviewer info ... | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the headless command named by ``argv[0]``; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print("medviewer: error: give a command: " + ", ".join(COMMANDS), file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(f"{__name__}.{COMMANDS[args[0]]}")
    return module.main(args)
