"""``medviewer models``: list, import, make, and move the active version of models
(:class:`medviewer.services.models.ModelCatalog`, shared with the app's AI and versions panels).

``medviewer models [list] [--json]`` lists the model folders; ``models import FOLDER``
validates and copies a model folder into the user models folder (exit 1 with the reason when
refused). ``models new NAME --task classification|segmentation --labels a,b,c [--from BASE]
[--input-size N] [--channels N] [--modality MOD] [--image-type T] [--body-region TEXT]
[--spacing MM] [--window C,W] [--arch resnet18|small_cnn|unet] [--seed N] [--json]`` makes the
untrained first version (0.0.0) of a new model in the user models folder, its backbone copied
from BASE where the shapes fit (the copied and skipped tensors are listed); exit 2 for a bad
option, 1 when it cannot be made. It is trained by ``medviewer finetune --base NAME``. ``models versions NAME [--json]`` lists a model's versions (parent, validation metric,
active marked ``*``) and the pointer history; ``models promote NAME VERSION`` and ``models
rollback NAME [VERSION]`` move the active-version pointer after loading the version's weights
(hash-checked, plain tensors only) and running one small input of its card's shape through it;
a version that fails (hash mismatch, missing or unreadable file, weights of another shape, NaN
output) is refused with exit 1 and the reason, and the pointer stays where it was.
``predict --model NAME`` uses the active version. ``models check-precision NAME[:VERSION]``
compares the model's labels in bf16 and fp32 on real data and records the
result beside its card (``precision.json``; bf16 is used on the CPU only where it passed).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from .progress import err, reason

__all__ = ["main", "build_parser"]

MODEL_ACTIONS = ("list", "import", "new", "versions", "promote", "rollback", "check-precision")
_OPERANDS = {"list": (0, 0), "import": (1, 1), "new": (1, 1), "versions": (1, 1),
             "promote": (2, 2), "rollback": (1, 2), "check-precision": (1, 1)}
_USAGE = {"list": "models [list] [--json]", "import": "models import FOLDER",
          "new": "models new NAME --task classification|segmentation --labels a,b,c "
                 "[--from BASE]",
          "versions": "models versions NAME [--json]", "promote": "models promote NAME VERSION",
          "rollback": "models rollback NAME [VERSION]",
          "check-precision": "models check-precision NAME[:VERSION] [--data PATH] [--no-write]"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medviewer", description="MedViewer models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{models}")
    pm = sub.add_parser("models", help="list, import, promote or roll back models",
                        description="'models [list] [--json]', 'models import FOLDER', "
                                    "'models new NAME --task T --labels a,b,c [--from BASE]', "
                                    "'models versions NAME [--json]', 'models promote NAME "
                                    "VERSION', 'models rollback NAME [VERSION]'.")
    pm.add_argument("action", nargs="?", default="list", choices=MODEL_ACTIONS)
    pm.add_argument("operands", nargs="*", metavar="ARG",
                    help="import: FOLDER; new: NAME; versions: NAME; promote: NAME VERSION; "
                         "rollback: NAME [VERSION] (default: the previously active version)")
    pm.add_argument("--json", action="store_true", help="with 'list'/'versions'/'new': JSON")
    pm.add_argument("--reason", default="", help="with 'promote'/'rollback': noted in the "
                                                 "pointer's history")
    pm.add_argument("--data", default=None, help="with 'check-precision': the real data to "
                    "compare bf16 with fp32 on (default: the demo chest CT for segmentation, "
                    "PneumoniaMNIST validation images for classification)")
    pm.add_argument("--no-write", action="store_true", help="with 'check-precision': print "
                    "the result only (default: write precision.json beside the model card)")
    _new_options(pm)
    return p


def _new_options(pm) -> None:
    from medviewer.services.models import DEFAULT_SIZE, FAMILIES

    g = pm.add_argument_group(
        "models new NAME: an untrained first version (0.0.0) for your own task; train it with "
        "'medviewer finetune --workspace W --base NAME'")
    g.add_argument("--task", choices=("classification", "segmentation"))
    g.add_argument("--labels", metavar="a,b,c",
                   help="classification: the classes (at least two); segmentation: the "
                        "foreground labels, value 1, 2, ... in this order (background is 0)")
    g.add_argument("--from", dest="base", metavar="BASE[:VERSION]",
                   help="initialise from this model of the same task: its network family, "
                        "input spec and every weight tensor whose shape fits (the output layer "
                        "for other labels is not copied)")
    g.add_argument("--input-size", type=int, metavar="N",
                   help=f"classification: images are resized to NxN (default "
                        f"{DEFAULT_SIZE['classification']}, or the base's); segmentation: the "
                        f"patch (multiple of 16, default {DEFAULT_SIZE['segmentation']})")
    g.add_argument("--channels", type=int, metavar="N", help="input channels (default 1)")
    g.add_argument("--modality", default="", metavar="MOD",
                   help="DICOM modality of the images (US, MR, CT, CR, ...): images of another "
                        "modality are refused (default: none given, not checked)")
    g.add_argument("--image-type", choices=("projection", "volume", "any"),
                   help="'projection' (radiographs), 'volume' (slices of a scan) or 'any' "
                        "(default: projection for CR/DX/..., otherwise any for a classifier "
                        "and volume for a segmentation model)")
    g.add_argument("--body-region", default="", metavar="TEXT", help="shown on the card")
    g.add_argument("--spacing", type=float, metavar="MM",
                   help="segmentation: in-plane pixel spacing of the model grid (default 1.0 "
                        "mm, or the base's)")
    g.add_argument("--window", metavar="C,W",
                   help="a fixed intensity window (e.g. CT 40,400) instead of the 0.5-99.5 "
                        "percentiles (default: percentiles, or the base's normalisation)")
    g.add_argument("--arch", choices=sorted(FAMILIES),
                   help="network family (default: resnet18 for classification, unet for "
                        "segmentation; with --from: the base's)")
    g.add_argument("--seed", type=int, default=0, help="random initialisation seed (default 0)")
    g.add_argument("--description", default="", help="one sentence for the card")


def _versions_table(catalog, name: str, as_json: bool) -> int:
    rows = catalog.versions(name)
    pointer = catalog.active_version(name)
    active = pointer or catalog.get(name).version
    hist = catalog.history(name)
    if as_json:
        print(json.dumps({"model": name, "active": active, "pointer": pointer is not None,
                          "versions": rows, "history": hist}, indent=2))
        return 0
    print(f"{'':2}{'version':<10} {'parent':<10} {'val metric':<34} source")
    for r in rows:
        metric = (f"{r['metric']} {r['value']:.4f} ({r['split']})" if r["metric"] else
                  "untrained (models new)" if r.get("untrained") else "—")
        base = r["parent_on_same_val"]
        same = f"   parent on the same set: {base:.4f}" if base is not None else ""
        print(f"{'*' if r['active'] else ' ':2}{r['version']:<10} {r['parent'] or '—':<10} "
              f"{metric:<34} {r['source']}{same}")
    note = "active.json" if pointer else "no pointer: the highest built-in version"
    print(f"* active: {name}:{active} ({note})")
    for h in hist:
        print(f"  {h.get('at', '?')} {h.get('action', '?')} -> {h.get('version', '?')}"
              f"{' (' + str(h['reason']) + ')' if h.get('reason') else ''}")
    return 0


def _versions_command(catalog, args) -> int:
    """``models versions NAME`` / ``promote NAME VERSION`` / ``rollback NAME [VERSION]``."""
    from medviewer.services.models import ModelError

    name = args.operands[0]
    try:
        if args.action == "versions":
            return _versions_table(catalog, name, args.json)
        before = catalog.active_version(name) or catalog.get(name).version
        if args.action == "promote":
            version = catalog.promote(name, args.operands[1],
                                      reason=args.reason or "promoted from the command line")
        else:
            version = catalog.rollback(name, args.operands[1] if len(args.operands) > 1 else None,
                                       reason=args.reason)
    except (ModelError, ValueError, OSError) as exc:
        err(f"error: {reason(exc)}")
        return 1
    print(f"{name}: active version {version} (was {before})")
    return 0


def _check_precision(catalog, args) -> int:
    """bf16 vs fp32 labels of one model on real data; the record beside its card."""
    from medviewer.services.models import ModelError
    from medviewer.services.precision_check import check_precision

    try:
        card = catalog.get(args.operands[0])
        result = check_precision(card, args.data, write=not args.no_write)
    except (ModelError, OSError, ValueError) as exc:
        err(f"error: {reason(exc)}")
        return 1
    print(json.dumps(result, indent=2))
    verdict = "bf16 allowed" if result["bf16_ok"] else "fp32 only"
    err(f"{card.ref}: labels agree on {100 * result['agreement']:.3f} % of "
        f"{result['voxels']} voxels (need {100 * result['min_agreement']:.1f} %), bf16 "
        f"{result['speedup']:.2f}x faster: {verdict}")
    return 0


def cmd_models(args) -> int:
    from medviewer.services.models import ModelCatalog, ModelError

    lo, hi = _OPERANDS[args.action]
    if not lo <= len(args.operands) <= hi:
        err(f"error: usage: medviewer {_USAGE[args.action]}")
        return 2
    catalog = ModelCatalog()
    if args.action in ("versions", "promote", "rollback"):
        return _versions_command(catalog, args)
    if args.action == "check-precision":
        return _check_precision(catalog, args)
    if args.action == "new":
        return _new_command(catalog, args)
    if args.action == "import":
        try:
            card = catalog.import_folder(args.operands[0])
        except (ModelError, OSError) as exc:
            err(f"error: model folder refused: {reason(exc)}")
            return 1
        print(f"imported {card.ref} into {card.folder}")
        return 0
    records = [catalog.record(c) for c in catalog.list()]
    problems = [{"folder": str(f), "problem": m} for f, m in catalog.problems]
    if args.json:
        json.dump({"models": records, "refused": problems, "user_dir": str(catalog.user_dir),
                   "builtin_dir": str(catalog.builtin_dir)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not records:
        print(f"no models (built-in: {catalog.builtin_dir}; user: {catalog.user_dir})")
    for r in records:
        ms = ", ".join(f"{k} {v:.3f}" for k, v in list(r["metrics"].items())[:4])
        print(f"{r['ref']:<28} {r['task']:<15} {r['source']:<8} labels: "
              f"{', '.join(r['labels'])}")
        state = "UNTRAINED (fine-tune it first)" if r["untrained"] else (ms or "no metrics")
        print(f"    {state}  ({r['architecture']})  {r['folder']}")
    for p in problems:
        print(f"refused {p['folder']}: {p['problem']}", file=sys.stderr)
    return 0


def _new_options_of(args):
    from medviewer.services.models import NewModelOptions, parse_labels

    missing = [flag for flag, v in (("--task", args.task), ("--labels", args.labels))
               if not v]
    if missing:
        raise ValueError(f"models new needs {' and '.join(missing)}")
    window = None
    if args.window:
        try:
            window = tuple(float(v) for v in args.window.split(","))
        except ValueError:
            window = ()
        if len(window) != 2:
            raise ValueError(f"--window must be CENTRE,WIDTH (e.g. 40,400), got {args.window!r}")
    return NewModelOptions(
        name=args.operands[0], task=args.task, labels=parse_labels(args.labels),
        base=args.base, family=args.arch, input_size=args.input_size, channels=args.channels,
        modality=args.modality, image_type=args.image_type, body_region=args.body_region,
        spacing_mm=args.spacing, window=window, seed=args.seed, description=args.description,
        extra={"command": _command_text(args)})


def _command_text(args) -> str:
    """The ``models new`` command line that makes this model (for its card)."""
    import shlex

    parts = ["medviewer", "models", "new", args.operands[0], "--task", args.task, "--labels",
             args.labels]
    for flag, value in (("--from", args.base), ("--input-size", args.input_size),
                        ("--channels", args.channels), ("--modality", args.modality or None),
                        ("--image-type", args.image_type),
                        ("--body-region", args.body_region or None), ("--spacing", args.spacing),
                        ("--window", args.window), ("--arch", args.arch)):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts + ["--seed", str(args.seed)])


def _new_command(catalog, args) -> int:
    """``models new NAME ...``: 0 made, 2 bad options, 1 could not be made."""
    from medviewer.services.models import ModelError

    try:
        options = _new_options_of(args)
        catalog.check_new(options)  # every option checked, before any torch work
    except (ModelError, ValueError) as exc:
        err(f"error: {reason(exc)}")
        return 2
    try:
        card, report = catalog.create(options)
    except (ModelError, OSError, RuntimeError) as exc:
        err(f"error: the model could not be made: {reason(exc)}")
        return 1
    if args.json:
        print(json.dumps({"model": card.ref, "folder": str(card.folder), "untrained": True,
                          "card": card.to_dict(), "copied": report["copied"],
                          "skipped": report["skipped"]}, indent=2))
        return 0
    print(f"created {card.ref} (untrained) in {card.folder}")
    print(f"  {card.task}: {', '.join(card.labels)}; {card.architecture['name']}; input "
          f"{json.dumps(card.input)}")
    dom = card.domain
    print(f"  domain: modalities {'/'.join(dom['modalities']) or 'any (not checked)'}, image "
          f"type {dom['image_type']}" + (f", {dom['body_region']}" if dom['body_region'] else ""))
    base = card.training.get("initialised_from")
    if base:
        n = len(report["copied"]) + len(report["skipped"])
        print(f"  initialised from {base}: copied {len(report['copied'])} of {n} weight tensors")
        for s in report["skipped"]:
            print(f"    skipped {s['layer']}: {s['reason']}")
    else:
        print(f"  random initialisation (seed {args.seed})")
    print(f"next: medviewer labels import WORKSPACE LABELS.csv --model {card.name}\n"
          f"      medviewer finetune --workspace WORKSPACE --base {card.name}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``models``; returns the exit code (2 for usage errors)."""
    from . import run_command

    return run_command(build_parser(), argv, cmd_models)


if __name__ == "__main__":
    sys.exit(main())
