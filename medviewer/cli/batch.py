"""``medviewer predict --batch``: a model over a whole archive into one output folder,
resumable and shared by any number of processes (see :mod:`medviewer.services.batch`).

``medviewer predict --batch --model NAME[:VERSION] [PATH...] [--list FILE] --out DIR
[--slice N] [--force] [--redo] [--skip-failed] [--run-id ID] [--threads N] [--device D]
[--no-anonymise]``; the same under
``torchrun --nproc_per_node=N`` (and across nodes) splits the studies between the processes.
Progress goes to stderr, one line per study. Exit codes (rank 0; other ranks exit 0 once their
share is done):

- 0: every study is done: predicted (ok) or refused as outside the model's domain, at least
  one ok
- 1: at least one study failed (its reason is in summary.jsonl and on stderr); rerun to retry
- 2: usage or set-up error (bad arguments, unknown model, the folder holds another model's
  results, no studies found, no file locking in the folder)
- 3: nothing failed but nothing was predicted: every study was refused
- 130: interrupted (Ctrl-C, SIGTERM); rerun the same command to resume
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

from .progress import TtyProgress, err, reporter

__all__ = ["cmd_batch"]


def _interrupt(signum, frame):  # SIGTERM (Slurm/Kubernetes pre-emption): stop cleanly
    raise KeyboardInterrupt


def _prefix(place) -> str:
    return f"[rank {place.rank}/{place.world_size}] " if place.world_size > 1 else ""


def _study_line(rec: dict) -> str:
    t = rec.get("timings", {}).get("total_s", 0.0)
    if rec["status"] != "ok":
        return f"{rec['status']} {rec['path']}: {rec['error']} ({t:.1f} s)"
    what = f"class {rec['class']}, " if "class" in rec else ""
    ood = rec.get("ood_score")
    ood_txt = "" if ood is None else f"ood {ood:.2f}{'' if rec.get('in_domain') else ' OUTSIDE'}, "
    return f"ok {rec['path']} ({what}{ood_txt}{t:.1f} s)"


def _setup(args, place):
    """(card, options, paths) or an exit code."""
    from medviewer.services.batch import BatchOptions, default_run_id
    from medviewer.services.batch_studies import read_list
    from medviewer.services.cases import is_labelmap_file
    from medviewer.services.models import ModelCatalog, ModelError, require_automatic

    if args.out == "-" or is_labelmap_file(args.out):
        err(f"error: --batch writes into a folder (--out {args.out} is not one)")
        return 2
    try:
        card = ModelCatalog().get(args.model)
        require_automatic(card)
        paths = list(args.paths) + (read_list(args.list) if args.list else [])
    except (ModelError, ValueError) as exc:
        err(f"error: {exc}")
        return 2
    if not paths:
        err("error: give PATHs or --list FILE")
        return 2
    if args.threads is not None and args.threads < 1:
        err(f"error: --threads {args.threads}: give 1 or more")
        return 2
    if place.world_size > 1 and not args.run_id and \
            os.environ.get("TORCHELASTIC_RUN_ID", "none") == "none" and place.rank == 0:
        err("warning: no shared run id (torchrun --rdzv-id, or --run-id): a study that fails "
            "may be tried once by each process")
    opts = BatchOptions(Path(args.out), args.slice, args.force, args.redo,
                        not args.skip_failed, args.run_id or default_run_id(),
                        anonymise=not args.no_anonymise)
    return card, opts, paths


def cmd_batch(args) -> int:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _batch(args)
    except KeyboardInterrupt:
        err("interrupted: rerun the same command to resume")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _batch(args) -> int:
    from medviewer.services.batch import BatchError, BatchRun, bind_folder, make_lane, placement
    from medviewer.services.batch_log import BatchLockError
    from medviewer.services.batch_studies import collect_studies
    from medviewer.services.models import ModelError

    place = placement()
    pre = _prefix(place)
    got = _setup(args, place)
    if isinstance(got, int):
        return got
    card, opts, paths = got
    tty = TtyProgress()
    try:
        bind_folder(opts.out, card, opts)
        found = collect_studies(paths, reporter(tty), tty.done)
        lane = make_lane(args.device, place, args.threads,
                         "fp32" if getattr(args, "fp32", False) else "auto")
        device = lane.device()
    except (BatchError, OSError, RuntimeError, ValueError) as exc:
        err(f"error: {exc}")
        return 2
    if not found.studies:
        err("error: no images or volumes found in " + ", ".join(map(str, paths)))
        return 2
    if place.rank == 0:
        extra = f"; {len(found.non_image)} files passed over (not images)" if found.non_image \
            else ""
        err(f"{len(found.studies)} studies{extra}; {card.ref} on {device}, "
            f"{place.world_size} process(es), run {opts.run_id}, writing to {opts.out}")
    count = [0]

    def on_record(study, rec):
        tty.done()
        count[0] += 1
        err(f"{pre}[{count[0]}] {_study_line(rec)}")

    run = BatchRun(card, lane, found.studies, opts, place, reporter(tty), tty.done,
                   on_record=on_record,
                   on_model=lambda s, d: err(f"{pre}model {card.ref} loaded on {d} in {s:.1f} s"),
                   on_wait=lambda n: err(f"{pre}waiting for {n} studies other processes hold"))
    try:
        tally = run.run()
    except KeyboardInterrupt:
        tty.done()
        raise
    except (BatchError, BatchLockError, ModelError) as exc:
        err(f"{pre}error: {exc}")
        return 2
    if place.rank != 0:
        err(f"{pre}{tally.ran_here} studies run by this process")
        return 0
    err(f"{tally.ok} ok, {tally.refused} refused, {tally.failed} failed of {len(found.studies)} "
        f"studies ({tally.done_before} done before, {tally.ran_here} run by rank 0); "
        f"summary: {opts.out / 'summary.jsonl'}")
    if tally.failed:
        more = f" (+{tally.failed - 5} more)" if tally.failed > 5 else ""
        err("failed: " + ", ".join(tally.failed_paths[:5]) + more + "; rerun to retry them")
    if tally.missing:
        err(f"{tally.missing} studies not done: rerun to resume")
    if tally.failed or tally.missing:
        return 1
    return 0 if tally.ok else 3
