"""One fine-tuning run: load, train, evaluate, gate, write the version, promote; exit codes.

Exit codes: 0 done (promoted or not), 2 bad input (bad manifest, no train or no validation
entries, unknown model, manifest for another model, a frozen validation set below the minimum),
130 cancelled (SIGTERM/SIGINT), 1 crash. A validation set too small to judge a model
(:mod:`medviewer.core.val_check`: ``--min-val-units``, ``--min-val-per-class``) is refused up
front, before any training: the ``error`` event has ``kind`` "validation_too_small", the
message says what is missing and ``validation`` holds the counts. Nothing is trained, written
or promoted — a version that could not be judged would only invite promoting it by hand.
A new version is assembled in a hidden staging folder (``ai.versions.staging_dir``) and appears
under its name only by one rename; its version number is taken then, under the model's lock
(``commit_new_version``), so fine-tunes started together commit as different versions. The
``start`` and ``gate`` events name the version the run expects (the next free one when it
started); the card, README, report and the ``done`` event name the one it got. A gate that
passed promotes only while the version it was judged against is still active. On cancel or
crash the staging folder is removed and the active pointer is untouched; a staging folder left
by a killed run is removed when the next run of the model starts. Under torchrun every rank
trains; only rank 0 prints, evaluates, writes and promotes. A new model's first run (its active
version is the untrained 0.0.0 of ``models new``) writes version 1.0.0 and is judged by
:func:`~medviewer.ai.training.gate.first_gate`: it must beat the trivial predictor (majority
class / all background) on the frozen validation set.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

from medviewer.ai.training.cli_args import build_parser, config_of
from medviewer.ai.training.events import (EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_CRASH, EXIT_OK,
                                          Cancelled, CancelSwitch, Emitter)

__all__ = ["main", "run", "BadInput"]


class BadInput(ValueError):
    """Input that can never train (exit code 2)."""

    def __init__(self, message: str, kind: str = "bad_input", **details):
        super().__init__(message)
        self.kind, self.details = kind, details


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def _command(args) -> str:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    head = (f"torchrun --nproc_per_node={world} -m medviewer.ai.training" if world > 1
            else "python -m medviewer.ai.training")
    parts = [head, "--manifest", str(args.manifest), "--base", args.base, "--epochs",
             str(args.epochs), "--seed", str(args.seed), "--patience", str(args.patience),
             "--margin", str(args.margin), "--val-every", str(args.val_every),
             "--min-val-units", str(args.min_val_units), "--min-val-per-class",
             str(args.min_val_per_class)]
    for flag, value in (("--lr", args.lr), ("--batch-size", args.batch_size)):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(parts + (["--no-augment"] if args.no_augment else []))


def _load_base(args):
    """(registry, verified base card); the task's default margin filled in; BadInput."""
    from medviewer.ai.cards import ModelError
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.training.cli_args import TASK_DEFAULTS

    try:
        registry = ModelRegistry(user_dir=args.models_dir)
        base = registry.get(args.base)
        base.verify()
    except ModelError as exc:
        raise BadInput(str(exc)) from None
    if getattr(args, "margin", None) is None:
        args.margin = float(TASK_DEFAULTS.get(base.task, {}).get("margin", 0.01))
    return registry, base


def _load_inputs(args, registry, base):
    """(registry, base card, manifest, train entries, val entries); BadInput when unusable."""
    from medviewer.ai.cards import ModelError
    from medviewer.ai.training.data import DataError, check_manifest_fits
    from medviewer.core.manifest import Manifest

    try:
        if not args.manifest:
            raise BadInput("no training manifest given (--manifest)")
        path = Path(args.manifest)
        if not path.is_file():
            raise BadInput(f"manifest {path} does not exist")
        manifest = Manifest.load(path)
        manifest.verify()
        check_manifest_fits(manifest, base)
    except BadInput:
        raise
    except (ModelError, DataError) as exc:
        raise BadInput(str(exc)) from None
    except (ValueError, KeyError, OSError) as exc:
        raise BadInput(f"bad manifest: {exc}") from None
    train, val = manifest.train_entries(), manifest.val_entries()
    if not train:
        raise BadInput("the manifest has no training entries")
    if not val:
        raise BadInput("the manifest has no validation entries (the frozen validation set is "
                       "empty)")
    _check_validation_size(args, manifest, val, base)
    return registry, base, manifest, train, val


def _check_validation_size(args, manifest, val, base) -> None:
    """BadInput (kind validation_too_small) below the validation minimum."""
    from medviewer.ai.training.data import DataError, unit_classes
    from medviewer.core.val_check import check_validation_set, judged_classes

    try:
        units = unit_classes(manifest, val, base)
    except (DataError, ValueError, KeyError, OSError) as exc:
        raise BadInput(f"bad manifest: {exc}") from None
    check = check_validation_set(units, judged_classes(base.task, base.labels),
                                 args.min_val_units, args.min_val_per_class)
    if not check["ok"]:
        raise BadInput(check["message"], kind="validation_too_small", validation=check)


def _samples(task: str, entries) -> int:
    if task == "segmentation":
        return sum(len(set((e.target or {}).get("slices", []))) for e in entries)
    return len(entries)


def run(args, stream=None) -> int:
    """Run the job described by parsed ``args``; JSON lines to ``stream`` (stdout)."""
    t0 = time.monotonic()
    switch = CancelSwitch().install()
    emitter = Emitter(stream, enabled=_rank() == 0)
    state = {"staging": None, "ctx": None}
    try:
        return _run(args, switch, emitter, state, t0)
    except Cancelled:
        emitter.emit("cancelled")
        return EXIT_CANCELLED
    except BadInput as exc:
        emitter.emit("error", message=str(exc), kind=exc.kind, **exc.details)
        print(f"finetune: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BaseException as exc:  # noqa: BLE001 - report every crash as an event
        # a library may wrap our Cancelled (MONAI transforms re-raise as RuntimeError)
        if switch.requested or isinstance(exc, KeyboardInterrupt):
            emitter.emit("cancelled")
            return EXIT_CANCELLED
        traceback.print_exc(file=sys.stderr)
        emitter.emit("error", message=f"{type(exc).__name__}: {exc}", kind="crash")
        return EXIT_CRASH
    finally:
        with switch.critical():
            if state["staging"] is not None:
                shutil.rmtree(state["staging"], ignore_errors=True)
            if state["ctx"] is not None:
                try:
                    state["ctx"].close()
                except Exception:  # noqa: BLE001 - a peer that died first
                    pass
        switch.uninstall()


def _run(args, switch: CancelSwitch, emitter: Emitter, state: dict, t0: float) -> int:
    from medviewer.ai.device import DeviceError, choose_device

    registry, base = _load_base(args)
    if base.task == "interactive":  # the promptable model trains on prompt records
        from medviewer.ai.interactive.finetune import run_prompt_finetune

        return run_prompt_finetune(args, registry, base, switch, emitter, state, t0)
    registry, base, manifest, train_entries, val_entries = _load_inputs(args, registry, base)
    try:
        device = choose_device(args.device, strict=True)
    except DeviceError as exc:
        raise BadInput(str(exc)) from None
    switch.check()
    from medviewer.ai.training import data, ddp, loop
    from medviewer.ai.training.evaluate import evaluate_prepared
    from medviewer.ai.weights import load_model

    from medviewer.ai import versions

    ctx = state["ctx"] = ddp.setup(device, getattr(args, "threads", None))
    cfg_dict = config_of(args, base.task)
    cfg = loop.TrainConfig(epochs=args.epochs, lr=float(cfg_dict["lr"]),
                           batch_size=int(cfg_dict["batch_size"]), seed=args.seed,
                           patience=args.patience, val_every=args.val_every,
                           augment=not args.no_augment)
    loop.seed_all(args.seed)
    name = base.name
    # the version this run expects; the one it gets is taken when it commits
    version = versions.next_version(registry, name, base.version) if ctx.is_main else ""
    if ctx.is_main:
        versions.clean_staging(registry, name)  # left by runs that crashed hard (power, kill -9)
        state["staging"] = versions.staging_dir(registry, name)
    import torch

    emitter.emit("start", base=base.ref, candidate=f"{name}:{version}", device=ctx.device,
                 threads=torch.get_num_threads(),
                 world_size=ctx.world_size, train=_samples(base.task, train_entries),
                 val=_samples(base.task, val_entries), train_entries=len(train_entries),
                 val_entries=len(val_entries), manifest_sha256=manifest.sha256,
                 epochs=args.epochs)
    cache: dict = {}
    try:
        if base.task == "segmentation":
            train_data = data.seg_train_items(manifest, train_entries, base, switch.check, cache)
            val_data = (data.seg_eval_cases(manifest, val_entries, base, switch.check, cache)
                        if ctx.is_main else None)
        else:
            train_data = data.cls_arrays(manifest, train_entries, base, switch.check, cache)
            val_data = (data.cls_arrays(manifest, val_entries, base, switch.check, cache)
                        if ctx.is_main else None)
    except data.DataError as exc:
        raise BadInput(str(exc)) from None
    del cache
    model = load_model(base, device=ctx.device)
    baseline = None
    if ctx.is_main:
        baseline = _base_eval(model, base, val_data, ctx.device, switch)
        emitter.emit("baseline", version=base.version, metric=baseline["metric"],
                     value=baseline["value"], per_class=baseline["per_class"],
                     **({"untrained": True, "reference": baseline["reference"]["text"]}
                        if base.untrained else {}))
    result = loop.train(model, base, train_data, val_data, cfg, ctx, emitter, switch.check)
    if not ctx.is_main:
        ctx.barrier()
        return EXIT_OK
    model.load_state_dict(result.best_state)
    cand_eval = result.best_eval or evaluate_prepared(model, base, val_data, ctx.device,
                                                      switch.check)
    active_eval, active_card = _active_eval(registry, base, baseline, val_data, ctx.device,
                                            switch)
    from medviewer.ai.training.gate import first_gate, gate
    from medviewer.ai.training.card_writer import metrics_block

    judge = first_gate if active_card.untrained else gate
    gate_dict = judge(dict(active_eval, version=_judged_version(active_card, active_eval)),
                      dict(cand_eval, version=version), args.margin, args.min_val_units,
                      args.min_val_per_class)
    emitter.emit("gate", **gate_dict)
    training = {"base": base.ref, "manifest_sha256": manifest.sha256,
                "manifest": str(Path(args.manifest).resolve()), "config": cfg_dict,
                "seed": args.seed, "device": ctx.device, "world_size": ctx.world_size,
                "history": result.history, "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
                "train_samples": _samples(base.task, train_entries),
                "val_samples": _samples(base.task, val_entries),
                "baseline": _baseline_note(base, baseline),
                "command": _command(args), "wall_time_s": round(time.monotonic() - t0, 1)}
    commit_and_promote(registry, base, model.cpu(),
                       metrics_block(base.task, cand_eval, manifest.sha256), training, gate_dict,
                       active_card, args.no_promote, f"fine-tuned from {base.ref}; gate passed",
                       switch, emitter, state, t0)
    ctx.barrier()
    return EXIT_OK


def commit_and_promote(registry, base, model, metrics: dict, training: dict, gate_dict: dict,
                       active_card, no_promote: bool, reason: str, switch, emitter, state: dict,
                       t0: float, source: str = "corrected labels") -> bool:
    """Write the candidate's weights into the staging folder, then make it a version: under
    the model's lock take the next free version number, write the card, README and gate report
    naming it, rename the folder into place (never cancelled half-way); promote it when the
    gate passed (unless ``no_promote``) and ``active_card``'s version, which the gate judged it
    against, is still active; emit ``done``. True if promoted. A promote that is refused (the
    active version changed, the weights do not run) leaves the version on disk, not active, and
    ``done`` says why (``not_promoted``)."""
    from medviewer.ai import versions
    from medviewer.ai.cards import ModelError
    from medviewer.ai.training.card_writer import WEIGHTS_FILE, write_candidate_card
    from medviewer.ai.training.report import write_report
    from medviewer.ai.weights import save_weights

    staging = state["staging"]
    switch.check()
    sha = save_weights(model, staging / WEIGHTS_FILE)
    written = {}

    def stamp(version: str) -> None:
        gate_dict.setdefault("candidate", {})["version"] = version
        card = write_candidate_card(staging, base, version, sha, metrics, training, source)
        written["report"] = write_report(staging, gate_dict, active_card, card)

    switch.check()
    why_not = None
    with switch.critical():
        version, folder = versions.commit_new_version(staging, registry, base.name,
                                                      base.version, stamp)
        state["staging"] = None
        promoted = bool(gate_dict.get("passed")) and not no_promote
        if promoted:
            try:
                versions.promote(registry, base.name, version, reason=reason,
                                 if_active=active_card.version)
            except ModelError as exc:
                promoted, why_not = False, str(exc)
                print(f"finetune: {base.name}:{version} not promoted: {exc}", file=sys.stderr)
    emitter.emit("done", version=version, folder=str(folder), promoted=promoted,
                 report=str(Path(folder) / Path(written["report"]).name),
                 wall_s=round(time.monotonic() - t0, 2),
                 **({"not_promoted": why_not} if why_not else {}))
    return promoted


def _base_eval(model, card, val_data, device: str, switch) -> dict:
    """A version's evaluation on the frozen validation set; for an untrained version (a new
    model's 0.0.0) the trivial predictor's, which is what its first version must beat."""
    from medviewer.ai.training.evaluate import evaluate_prepared, trivial_evaluation

    if card.untrained:
        return trivial_evaluation(card, val_data)
    return evaluate_prepared(model, card, val_data, device, switch.check)


def _judged_version(card, evaluation: dict) -> str:
    """What the report calls the side the candidate is compared with."""
    if card.untrained:
        kind = (evaluation.get("reference") or {}).get("kind", "trivial")
        return f"{kind.replace('_', '-')} baseline"
    return card.version


def _baseline_note(base, baseline: dict) -> dict:
    """The card's record of the base on the frozen validation set (an untrained base has no
    value of its own: the trivial predictor's is noted beside it)."""
    if base.untrained:
        return {"version": base.version, "value": None, "untrained": True,
                "trivial": {"value": baseline["value"],
                            "what": baseline["reference"]["text"]}}
    return {"version": base.version, "value": baseline["value"]}


def _active_eval(registry, base, baseline: dict, val_data, device: str, switch):
    """(evaluation, card) of the active version (the base's evaluation when it is active; the
    trivial predictor's when the active version is untrained)."""
    from medviewer.ai.weights import load_model

    active = registry.get(base.name)
    if active.version == base.version:
        return baseline, active
    model = None if active.untrained else load_model(active, device=device)
    return _base_eval(model, active, val_data, device, switch), active
