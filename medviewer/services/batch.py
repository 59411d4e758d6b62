"""Batch prediction over an archive (``medviewer predict --batch``): one model load per process,
resumable, and shared by any number of processes (torchrun on one or several machines, a Slurm
array, a Kubernetes Job) that write to one output folder.

Output folder::

    batch.json        the model and settings the folder holds results of (a rerun with others
                      is refused unless --redo)
    summary.jsonl     one line per study attempt (see :class:`BatchRun` for its fields); the
                      resume manifest: a study whose last line is ok (outputs present) or
                      refused is done
    outputs/          per study, written atomically: <name>_<id12>.nii.gz + .labels.json
                      (segmentation) or <name>_<id12>.json (classification)
    .batch.lock       the claims (see :mod:`medviewer.services.batch_log`)

How the work is split: every process lists the same studies and walks them in the same order,
*claiming* each with a non-blocking lock on the shared folder; a claimed or done study is
passed over. A fast process therefore takes more studies, no process needs to know how many
others there are, and a process that dies drops its claims at once. Rank 0, after its walk,
waits on the studies still claimed by others and takes over any left behind, then reads the
summary for the exit status of the whole run. No process group is needed: torchrun's ranks
only choose who reports, how many CPU threads each takes and which GPU each uses.

A *run* (``run_id``: torchrun's rendezvous id, or ``--run-id``, or one per process) attempts a
study at most once: a study that failed in this run is not retried by another rank; a later
run retries failed studies (unless told not to).
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from medviewer.ai.training.ddp import DistEnv as Placement
from medviewer.ai.training.ddp import dist_env
from medviewer.core.atomic import atomic_write_text, is_temp_name

from .batch_log import BatchLock, SummaryLog, SUMMARY_FILE
from .batch_studies import Study
from .case_predict import classify_case, segment_case, write_segmentation
from .cases import case_stem
from .model_fit import DomainMismatch

__all__ = ["BatchError", "BatchOptions", "BatchRun", "Tally", "Placement", "placement", "make_lane",
           "bind_folder", "default_run_id", "CONFIG_FILE", "OUTPUTS_DIR", "DONE_STATUSES"]

CONFIG_FILE = "batch.json"
OUTPUTS_DIR = "outputs"
DONE_STATUSES = ("ok", "refused")


class BatchError(ValueError):
    """A batch that cannot start (the folder holds another model's results...)."""


@dataclass
class BatchOptions:
    out: Path
    slice: Optional[int] = None
    force: bool = False
    redo: bool = False  # attempt every study again (once in this run)
    retry_failed: bool = True  # attempt studies that failed in an earlier run
    run_id: str = ""
    anonymise: bool = True  # the sidecars name the patient by a pseudonym (services.exports)

    def settings(self) -> dict:
        return {"slice": self.slice, "force": bool(self.force),
                "anonymise": bool(self.anonymise)}


def placement(environ=None) -> Placement:
    """This process in a torchrun launch, from its environment (rank 0 of 1 without one)."""
    return dist_env(environ)


def default_run_id(environ=None) -> str:
    """torchrun's rendezvous id (shared by its processes), else a fresh id for this process."""
    env = os.environ if environ is None else environ
    rid = env.get("TORCHELASTIC_RUN_ID", "")
    return rid if rid and rid != "none" else uuid.uuid4().hex[:12]


def make_lane(device: str, place: Placement, threads: Optional[int] = None,
              precision: str = "auto"):
    """The model lane of a batch process: ``threads`` CPU threads (default: its share of the
    cores, cores / processes on this machine), and under torchrun its own GPU (local rank
    modulo the GPUs) when it runs on CUDA."""
    from medviewer.ai.training.ddp import threads_per_process, use_local_gpu

    from .ai_runs import ModelLane

    if place.local_world_size > 1 and device in ("auto", "cuda"):
        use_local_gpu(place.local_rank)
    return ModelLane(device, strict=True, precision=precision,
                     threads=threads or threads_per_process(place.local_world_size))


def bind_folder(out: Path, card, opts: BatchOptions) -> None:
    """Create ``out`` and record what it holds results of; BatchError when it holds another
    model's or other settings' results (unless ``opts.redo``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BatchError(f"--out {out} is a file; a batch writes into a folder")
    want = {"model": card.ref, "task": card.task, **opts.settings()}
    try:
        have = json.loads((out / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        have = None
    # folders from before the anonymise option hold anonymised (identity-free) results
    same = have is not None and {k: have.get(k, True if k == "anonymise" else None)
                                 for k in want} == want
    if have is not None and not same and not opts.redo:
        raise BatchError(f"{out} holds results of {have.get('model')} (slice "
                         f"{have.get('slice')}, force {have.get('force')}); this run asks for "
                         f"{card.ref} (slice {opts.slice}, force {opts.force}): give --redo to "
                         f"replace them, or another --out")
    (out / OUTPUTS_DIR).mkdir(parents=True, exist_ok=True)
    if not same:
        atomic_write_text(out / CONFIG_FILE, json.dumps({"format": 1, **want}, indent=2) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class Tally:
    """The state of a run's studies, from the summary (rank 0's view after its sweep)."""
    ok: int = 0
    refused: int = 0
    failed: int = 0
    missing: int = 0  # not done (another process still on it, or it was killed)
    ran_here: int = 0  # attempted by this process
    done_before: int = 0  # done by an earlier run: skipped
    failed_paths: list = field(default_factory=list)


class BatchRun:
    """This process's part of a batch. Each summary line: ``study_id``, ``path`` (relative),
    ``status`` (ok / failed / refused), ``error``, ``model`` (name:version), ``model_name``,
    ``model_version``, ``task``, ``settings`` (slice, force), ``in_domain``, ``ood_score``,
    ``forced``, ``class`` and ``probabilities`` (classification), ``timings`` (load_s,
    predict_s, write_s, total_s), ``outputs`` (relative to the folder), ``device``, ``run``,
    ``rank``, ``finished`` (UTC)."""

    def __init__(self, card, lane, studies: list, opts: BatchOptions,
                 place: Placement = Placement(), reporter=None,
                 done: Callable[[], None] = lambda: None,
                 on_record: Callable[[Study, dict], None] = lambda s, r: None,
                 on_model: Callable[[float, str], None] = lambda s, d: None,
                 on_wait: Callable[[int], None] = lambda n: None):
        self.card, self.lane, self.studies, self.opts, self.place = card, lane, studies, opts, place
        self.out = Path(opts.out)
        self.run_id = opts.run_id or default_run_id()
        self.reporter, self.done = reporter, done
        self.on_record, self.on_model, self.on_wait = on_record, on_model, on_wait
        self.log = SummaryLog(self.out / SUMMARY_FILE)
        self.lock: Optional[BatchLock] = None
        self.model_ready = False
        self.ran_here = 0

    # --------------------------------------------------------------------- state
    def settled(self, study: Study) -> bool:
        """Whether ``study`` needs no attempt now: this run attempted it, or (unless redo)
        an earlier run finished it with this model and settings."""
        if study.id in self.log.ran_by.get(self.run_id, ()):
            return True
        rec = self.log.latest.get(study.id)
        if self.opts.redo or rec is None or rec.get("model") != self.card.ref \
                or rec.get("settings") != self.opts.settings():
            return False
        status = rec.get("status")
        if status == "ok":
            return all((self.out / p).is_file() for p in rec.get("outputs", []))
        return status == "refused" or (status == "failed" and not self.opts.retry_failed)

    # --------------------------------------------------------------------- the walk
    def run(self) -> Tally:
        """Walk the studies (claiming each), then on rank 0 wait for the others' and take
        over any left behind. KeyboardInterrupt stops it (claims go with the process)."""
        self.lock = BatchLock(self.out)
        try:
            self.log.refresh()
            before = sum(1 for s in self.studies if self.settled(s))
            for study in self.studies:
                self._attempt(study, wait=False)
            if self.place.rank == 0:
                self.log.refresh()
                waiting = [s for s in self.studies if not self.settled(s)]
                if waiting:
                    self.on_wait(len(waiting))
                for study in waiting:
                    self._attempt(study, wait=True)
            self.log.refresh()
            return self._tally(before)
        finally:
            self.lock.close()

    def _attempt(self, study: Study, wait: bool) -> None:
        if self.settled(study) or not self.lock.claim(study.id, wait=wait):
            return
        try:
            self.log.refresh()  # another process may have finished it meanwhile
            if self.settled(study):
                return
            rec = self._process(study)
            self.log.append(rec, self.lock)
            self.log.refresh()
            self.ran_here += 1
            self.on_record(study, rec)
        finally:
            self.lock.release(study.id)

    def _tally(self, before: int) -> Tally:
        t = Tally(ran_here=self.ran_here, done_before=before)
        for s in self.studies:
            rec = self.log.latest.get(s.id) or {}
            status = rec.get("status")
            if rec.get("model") != self.card.ref or rec.get("settings") != self.opts.settings():
                status = None  # another model's or settings' result: not this batch's
            if status in ("ok", "refused", "failed"):
                setattr(t, status, getattr(t, status) + 1)
                if status == "failed":
                    t.failed_paths.append(s.path)
            else:
                t.missing += 1
        return t

    # --------------------------------------------------------------------- one study
    def _outputs(self, study: Study) -> list:
        name = f"{case_stem(study.path)}_{study.id[:12]}"
        if self.card.task == "segmentation":
            return [f"{OUTPUTS_DIR}/{name}.nii.gz", f"{OUTPUTS_DIR}/{name}.labels.json"]
        return [f"{OUTPUTS_DIR}/{name}.json"]

    def _clean_temps(self, outputs: list) -> None:
        """Remove what a killed attempt at this (claimed) study left half-written."""
        folder = self.out / OUTPUTS_DIR
        for rel in outputs:
            for tmp in folder.glob(f".{Path(rel).name}.*"):
                if is_temp_name(tmp.name):
                    tmp.unlink(missing_ok=True)

    def _ensure_model(self) -> None:
        """Load the model once, at the first study that needs it (a resumed run with nothing
        left to do never loads it); BatchError when it cannot load: that stops the batch."""
        if not self.model_ready:
            t0 = time.perf_counter()
            try:
                device = self.lane.device()
                self.lane.model(self.card)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                raise BatchError(f"cannot load {self.card.ref}: {_first_line(exc)}") from exc
            self.model_ready = True
            self.on_model(time.perf_counter() - t0, device)

    def _process(self, study: Study) -> dict:
        card = self.card
        rec = {"study_id": study.id, "path": study.path, "status": "failed", "error": "",
               "model": card.ref, "model_name": card.name, "model_version": card.version,
               "task": card.task, "settings": self.opts.settings(), "in_domain": None,
               "ood_score": None, "forced": False, "timings": {}, "outputs": [],
               "run": self.run_id, "rank": self.place.rank}
        if not study.error:
            self._ensure_model()  # its time is reported once, not in the first study's
            rec["device"] = self.lane.device()
        t0 = time.perf_counter()
        if study.error:
            rec["error"] = study.error
        else:
            try:
                self._predict(study, rec)
            except DomainMismatch as exc:
                rec.update(status="refused", error=f"outside the model's domain: {exc.fit.reason}")
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # one bad study never stops the batch
                rec["error"] = _first_line(exc)
        rec["timings"]["total_s"] = round(time.perf_counter() - t0, 4)
        rec["finished"] = _now()
        return rec

    def _predict(self, study: Study, rec: dict) -> None:
        outputs = self._outputs(study)
        self._clean_temps(outputs)
        kw = dict(z=self.opts.slice, force=self.opts.force, reporter=self.reporter,
                  done=self.done)
        if self.card.task == "segmentation":
            pred = segment_case(study.case, self.card, self.lane, **kw)
            write_segmentation(pred, self.out / outputs[0], study.path,
                               anonymise=self.opts.anonymise)
        else:
            pred = classify_case(study.case, self.card, self.lane, **kw)
            t0 = time.perf_counter()
            doc = {"study_id": study.id, "path": study.path, "slice": pred.run.z,
                   **pred.run.to_dict()}
            atomic_write_text(self.out / outputs[0], json.dumps(doc, indent=2) + "\n")
            pred.timings["write_s"] = time.perf_counter() - t0
            rec.update({"class": pred.run.label, "probabilities": pred.run.probs})
        run = pred.run
        rec.update(status="ok", outputs=outputs, in_domain=run.ood.get("in_domain"),
                   ood_score=run.ood.get("ood_score"), forced=bool(run.forced))
        rec["timings"].update({k: round(v, 4) for k, v in pred.timings.items()})
