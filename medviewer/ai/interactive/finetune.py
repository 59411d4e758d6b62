"""Fine-tune the promptable model (task "interactive") on prompt records: the branch of the
trainer child ``python -m medviewer.ai.training`` for that task, with the same arguments,
JSON-lines events (start, baseline, progress, epoch, gate, done / error / cancelled), exit
codes, staging folder, version numbering, card writer, report and promotion as the automatic
models' fine-tune (:mod:`medviewer.ai.training.run`), so the Fine-tune dialog, its progress,
cancel and report, and ``medviewer finetune`` work unchanged.

``--manifest`` names a :class:`~medviewer.core.prompt_set.PromptSet` file (built from the
workspace's prompt records with a frozen validation split by
:mod:`medviewer.services.prompt_finetune`). The run:

1. turns each training record (its image slice and accepted mask) into a one-slice
   :class:`~.train_data.Case`; with ``--replay auto`` the built-in training cases of
   ``../shared/data`` (when present) are mixed in for ``--replay-fraction`` of every batch;
2. measures the base version with the click protocol (:func:`medviewer.core.click_sim.
   run_protocol`, up to ``--max-clicks``) on every frozen validation record: mean NoC@85 (the
   gate metric, lower is better), mean NoC@90, mean Dice after one click;
3. trains ``--steps`` steps from the base version's weights (:func:`.train.train`);
4. measures the candidate the same way and gates it (:func:`medviewer.ai.training.gate.gate`
   with ``lower_is_better``): it passes when its mean NoC@85 is at most the active version's
   plus ``--margin`` clicks (default 0.5);
5. writes the new version (the next free version number, taken when it commits; never
   overwriting one) with a card that records the parent, the gate result and the records
   used, and promotes it when it passed.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import List

import numpy as np

from medviewer.ai.training.events import EXIT_OK

__all__ = ["run_prompt_finetune", "record_cases", "eval_items", "click_eval", "METRIC"]

METRIC = "mean_noc85"
METRIC_TEXT = "mean clicks to Dice 0.85 (lower is better)"


def record_cases(pset, entries) -> list:
    """One-slice training Cases (image (1, y, x), structure "object") of prompt records."""
    from medviewer.ai.interactive.train_data import Case

    out = []
    for r in entries:
        sy, sx = (float(v) for v in r["spacing"])
        out.append(Case(f"record-{r['id'][:8]}", pset.image(r["id"])[None],
                        (max(sy, sx), sy, sx), {"object": pset.mask(r["id"])[None]}))
    return out


def eval_items(pset, entries) -> List[dict]:
    """Click-protocol items (see :func:`.evaluate.evaluate`) of validation records."""
    return [{"group": "frozen validation", "case": r["id"], "structure": r["plane"],
             "slice": r["slice"], "image": pset.image(r["id"]), "reference": pset.mask(r["id"]),
             "spacing": tuple(float(v) for v in r["spacing"])} for r in entries]


def click_eval(model, card, items: List[dict], max_clicks: int = 20, check=None) -> dict:
    """Click metrics of ``model`` on ``items``, as a gate evaluation: ``metric`` mean_noc85,
    ``value``, ``lower_is_better``, ``n``, mean_noc90, mean_dice_1, per-record ``rows`` and
    ``units`` (for the paired bootstrap) and ``per_record``."""
    from medviewer.ai.interactive import learned
    from medviewer.ai.interactive.evaluate import engine_fn, evaluate

    rows = []
    with learned.using_model(model, card):
        fn = engine_fn(learned)
        for it in items:
            if check is not None:
                check()
            rows += evaluate(fn, [it], max_clicks)
    if not rows:
        return {"metric": METRIC, "value": None, "lower_is_better": True, "per_class": {},
                "n": 0, "rows": [], "units": []}
    return {"metric": METRIC, "lower_is_better": True, "per_class": {}, "n": len(rows),
            "value": round(statistics.mean(r["noc85"] for r in rows), 4),
            "mean_noc90": round(statistics.mean(r["noc90"] for r in rows), 4),
            "mean_dice_1": round(statistics.mean(r["dice_1"] for r in rows), 4),
            "max_clicks": int(max_clicks),
            "rows": [[float(r["noc85"])] for r in rows], "units": [r["case"] for r in rows],
            "per_record": [{"id": r["case"], "noc85": r["noc85"], "noc90": r["noc90"],
                            "dice_1": r["dice_1"]} for r in rows]}


def _load_set(args):
    from medviewer.ai.training.run import BadInput
    from medviewer.core.prompt_set import PromptSet, is_prompt_set

    if not args.manifest:
        raise BadInput("no prompt-record training set given (--manifest; `medviewer finetune "
                       "--workspace W --model interactive-promptable` builds it)")
    path = Path(args.manifest)
    if not path.is_file():
        raise BadInput(f"training set {path} does not exist")
    if not is_prompt_set(path):
        raise BadInput(f"{path.name} is not a prompt-record training set: the promptable "
                       "model trains on prompt records, not on a label manifest")
    try:
        return PromptSet.load(path)
    except (ValueError, KeyError, OSError) as exc:
        raise BadInput(f"bad prompt-record training set: {exc}") from None


def _check_sizes(pset) -> None:
    from medviewer.ai.training.run import BadInput

    n_train, n_val = len(pset.train_entries()), len(pset.val_entries())
    missing = []
    if n_val < 1:
        missing.append("no frozen validation record (at least 1 is needed to count clicks "
                       "before and after)")
    if n_train < 1:
        missing.append("no training record")
    if missing:
        raise BadInput(f"too few prompt records to fine-tune ({n_train} training, {n_val} "
                       f"frozen validation): {'; '.join(missing)}. Accept more Prompt-tool "
                       "results, on slices at least 8 apart or on other images.",
                       kind="validation_too_small",
                       validation={"ok": False, "val_records": n_val,
                                   "train_records": n_train, "missing": missing})


def _command(args, steps: int) -> str:
    return (f"python -m medviewer.ai.training --manifest {args.manifest} --base {args.base} "
            f"--steps {steps} --seed {args.seed} --margin {args.margin} --replay {args.replay} "
            f"--replay-fraction {args.replay_fraction} --max-clicks {args.max_clicks}"
            + (f" --threads {args.threads}" if args.threads else ""))


def _replay_cases(args) -> list:
    if args.replay != "auto":
        return []
    from medviewer.ai.interactive.train_data import (load_training_cases,
                                                     training_data_available)

    if not training_data_available():
        print("finetune: the built-in training data is not here; training on the prompt "
              "records only", file=sys.stderr)
        return []
    return load_training_cases(log=lambda m: print(f"replay: {m}", file=sys.stderr))


def run_prompt_finetune(args, registry, base, switch, emitter, state, t0: float) -> int:
    """The interactive branch of :func:`medviewer.ai.training.run.run` (same contract)."""
    from medviewer.ai import versions
    from medviewer.ai.interactive.train import train
    from medviewer.ai.training.card_writer import metrics_block
    from medviewer.ai.training.cli_args import TASK_DEFAULTS
    from medviewer.ai.training.gate import gate
    from medviewer.ai.training.run import BadInput, commit_and_promote
    from medviewer.ai.weights import load_model

    pset = _load_set(args)
    _check_sizes(pset)
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    defaults = TASK_DEFAULTS["interactive"]
    steps = int(args.steps or defaults["steps"])
    lr = float(args.lr if args.lr is not None else defaults["lr"])
    batch = int(args.batch_size or defaults["batch_size"])
    train_entries, val_entries = pset.train_entries(), pset.val_entries()
    cases = record_cases(pset, train_entries)
    items = eval_items(pset, val_entries)
    switch.check()
    name = base.name
    version = versions.next_version(registry, name, base.version)
    versions.clean_staging(registry, name)
    state["staging"] = versions.staging_dir(registry, name)
    emitter.emit("start", base=base.ref, candidate=f"{name}:{version}", device="cpu",
                 world_size=1, train=len(train_entries), val=len(val_entries),
                 train_entries=len(train_entries), val_entries=len(val_entries),
                 manifest_sha256=pset.sha256, epochs=1, steps=steps, metric=METRIC,
                 metric_text=METRIC_TEXT)
    replay = _replay_cases(args)
    switch.check()
    parent = load_model(base).eval()
    baseline = click_eval(parent, base, items, args.max_clicks, switch.check)
    emitter.emit("baseline", version=base.version, metric=METRIC, value=baseline["value"],
                 per_class={}, mean_noc90=baseline.get("mean_noc90"),
                 mean_dice_1=baseline.get("mean_dice_1"), lower_is_better=True)
    losses: list = []

    def on_step(step, total, loss):
        switch.check()
        losses.append(loss)
        emitter.progress(1, 1, step, total, loss)

    try:
        result = train(None, seed=args.seed, steps=steps, batch_size=batch, lr=lr,
                       init_weights=base.weights_path, cases=cases, replay=replay or None,
                       replay_fraction=args.replay_fraction, on_step=on_step,
                       log=lambda m: print(m, file=sys.stderr), threads=args.threads)
    except ValueError as exc:  # e.g. no usable slice among the records
        raise BadInput(f"cannot train on these prompt records: {exc}") from None
    model = result["model"]
    cand = click_eval(model, None, items, args.max_clicks, switch.check)
    emitter.emit("epoch", epoch=1, epochs=1, train_loss=float(np.mean(losses[-20:])),
                 val_metric=cand["value"], metric=METRIC, best=True)
    active = registry.get(name)
    active_eval = baseline if active.version == base.version else click_eval(
        load_model(active).eval(), active, items, args.max_clicks, switch.check)
    gate_dict = gate(dict(active_eval, version=active.version), dict(cand, version=version),
                     args.margin)
    for side, ev in (("active", active_eval), ("candidate", cand)):
        gate_dict[side].update(mean_noc90=ev.get("mean_noc90"),
                               mean_dice_1=ev.get("mean_dice_1"))
    gate_dict["metric_text"] = METRIC_TEXT
    emitter.emit("gate", **gate_dict)
    print(f"gate: {'passed' if gate_dict['passed'] else 'not passed'}: {gate_dict['reason']}",
          file=sys.stderr)
    training = {
        "base": base.ref, "parent_version": base.version, "task": "interactive",
        "manifest_sha256": pset.sha256, "manifest": str(Path(args.manifest).resolve()),
        "records": {"train": [r["id"] for r in train_entries],
                    "val": [r["id"] for r in val_entries]},
        "replay_cases": [c.name for c in replay], "replay_fraction":
            args.replay_fraction if replay else 0.0,
        "config": {"steps": steps, "lr": lr, "batch_size": batch, "margin": args.margin,
                   "max_clicks": args.max_clicks, "replay": args.replay},
        "seed": args.seed, "device": "cpu", "world_size": 1, "history": result["history"],
        "best_epoch": 1, "epochs_run": 1, "stopped_early": False,
        "train_samples": len(train_entries), "val_samples": len(val_entries),
        "baseline": {"version": base.version, "value": baseline["value"],
                     "mean_noc90": baseline.get("mean_noc90"),
                     "mean_dice_1": baseline.get("mean_dice_1")},
        "gate": {k: v for k, v in gate_dict.items() if k != "validation"},
        "command": _command(args, steps), "wall_time_s": round(time.monotonic() - t0, 1)}
    commit_and_promote(registry, base, model.cpu(),
                       metrics_block("interactive", cand, pset.sha256), training, gate_dict,
                       active, args.no_promote,
                       f"fine-tuned from {base.ref} on prompt records; gate passed ({METRIC})",
                       switch, emitter, state, t0, source="accepted prompt records")
    return EXIT_OK
