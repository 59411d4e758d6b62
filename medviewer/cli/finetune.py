"""``medviewer finetune``: build the training manifest from a workspace, then fine-tune.

Same parser and main as ``python -m medviewer.ai.training`` plus ``--workspace W`` (and
``--val-fraction``): with a workspace, the label store's corrected/final records for the
model are turned into a manifest (skipped records
are listed on stderr without patient data; the same builder as the app's Fine-tune dialog,
:func:`medviewer.services.finetune.build_training_set`) and the run uses it; with ``--manifest`` it runs
on that file as is. For the promptable model (``--model interactive-promptable``) the training
set is the workspace's prompt records (accepted Prompt-tool results), the run trains
``--steps`` steps and the gate is the mean number of clicks to Dice 0.85 on the frozen
validation records (lower is better; a ``gate:`` line on stderr says the result). JSON-lines
progress on stdout; exit codes as the training entry point
(0 done, 1 crash, 2 bad input, 130 cancelled). A frozen validation set below the minimum
(``--min-val-units``, ``--min-val-per-class``) is refused by the trainer before any training
(exit 2, an ``error`` event of kind "validation_too_small" saying what is missing, the same
words on stderr); ``--manifest-only`` reports the same check in its JSON line.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

__all__ = ["main"]


def _build_manifest(args) -> int:
    """Build the manifest into the workspace; sets ``args.manifest``; returns 0, 1 (the
    workspace cannot be written) or 2."""
    from medviewer.services.finetune import build_training_set
    from medviewer.services.models import ModelCatalog, ModelError
    from medviewer.services.workspace import Workspace, WorkspaceUnavailable

    try:
        card = ModelCatalog(user_dir=args.models_dir).get(args.base)
    except ModelError as exc:
        print(f"finetune: {exc}", file=sys.stderr)
        return 2
    workspace = Workspace(folder=args.workspace)
    try:
        manifest, skipped = build_training_set(workspace.store, card, args.val_fraction)
        path = manifest.path  # the file the builder wrote
    except WorkspaceUnavailable as exc:  # read-only or removed: one line, no traceback
        print(f"finetune: error: {exc} (the training manifest is written there)",
              file=sys.stderr)
        return 1
    finally:
        workspace.close()
    for reason in skipped:
        print(f"finetune: skipped: {reason}", file=sys.stderr)
    args.manifest = str(path)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``medviewer finetune ...`` (``argv`` may start with the word ``finetune``)."""
    from medviewer.services.finetune import run_trainer, trainer_parser

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "finetune":
        args = args[1:]
    parser = trainer_parser("medviewer finetune", workspace=True)
    ns = parser.parse_args(args)
    if not ns.manifest and not ns.workspace:
        parser.error("give --workspace (build the manifest) or --manifest")
    if ns.workspace and not ns.manifest:
        code = _build_manifest(ns)
        if code:
            return code
        if ns.manifest_only:
            return _print_manifest(ns)
    elif getattr(ns, "manifest_only", False):
        parser.error("--manifest-only needs --workspace")
    return run_trainer(ns)


def _print_manifest(ns) -> int:
    """The manifest as a JSON line, with its validation-size check (a warning on stderr when
    the trainer would refuse it)."""
    import json

    from medviewer.core.manifest import Manifest
    from medviewer.services.finetune import validation_check
    from medviewer.services.models import ModelCatalog

    from medviewer.core.prompt_set import PromptSet, is_prompt_set

    path = ns.manifest
    card = ModelCatalog(user_dir=ns.models_dir).get(ns.base)
    if is_prompt_set(path):  # the promptable model: its prompt records
        m = PromptSet.load(path)
    else:
        m = Manifest.load(path)
    check = validation_check(m, card, ns.min_val_units, ns.min_val_per_class)
    line = {"event": "manifest", "path": str(path), "sha256": m.sha256, "model": m.model,
            "train_entries": len(m.train_entries()), "val_entries": len(m.val_entries())}
    if check is not None:
        line["validation"] = check
        if not check["ok"]:
            print(f"finetune: warning: {check['message']}", file=sys.stderr)
    print(json.dumps(line), flush=True)
    return 0


