"""Fine-tuning from corrections, shared by the Fine-tune dialog and ``medviewer finetune``:
the training manifest of a model from the label store, whether its frozen validation set is
big enough to judge the model, the trainer's command line, and reading the trainer's
JSON-lines output into events and an outcome.

The trainer is the child process ``python -m medviewer.ai.training`` (it reads the manifest
file, never the store). Starting and stopping that process is the caller's: a QProcess in
the app, the same interpreter in the CLI."""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

from medviewer.core.val_check import (DEFAULT_MIN_PER_CLASS, DEFAULT_MIN_UNITS,
                                      check_validation_set, judged_classes,
                                      manifest_unit_classes)

TRAINER_MODULE = ["-m", "medviewer.ai.training"]
EXIT_CANCELLED = 130

__all__ = ["TRAINER_MODULE", "build_training_set", "validation_check", "trainer_args",
           "app_threads",
           "TrainerOutput", "DEFAULT_MIN_UNITS", "DEFAULT_MIN_PER_CLASS"]


def build_training_set(store, card, val_fraction: Optional[float] = None) -> Tuple[object, List[str]]:
    """(Manifest written into the workspace, skipped reasons without patient data) of the
    corrected and final records of ``card``'s model; the frozen validation split is kept.
    For the promptable model (task "interactive") the training set is its prompt records: a
    :class:`~medviewer.core.prompt_set.PromptSet` (same ``path``, ``train_entries()``,
    ``val_entries()``), see :mod:`medviewer.services.prompt_finetune`."""
    from medviewer.storage.manifest_build import build_manifest

    if card.task == "interactive":
        from medviewer.services.prompt_finetune import build_prompt_training_set

        return build_prompt_training_set(store, card, 0.2 if val_fraction is None
                                         else val_fraction)

    kw = {} if val_fraction is None else {"val_fraction": val_fraction}
    return build_manifest(store, card.name, card.task, list(card.labels),
                          int(card.input.get("dims", 2)), **kw)


def validation_check(manifest, card, min_units: int = DEFAULT_MIN_UNITS,
                     min_per_class: int = DEFAULT_MIN_PER_CLASS) -> Optional[dict]:
    """Is the manifest's frozen validation set big enough to gate ``card``'s model
    (:func:`medviewer.core.val_check.check_validation_set`)? None when the manifest does not
    record its classes (the trainer then counts them from the label files). A prompt set is
    checked for at least one training and one frozen validation record."""
    if card.task == "interactive":
        from medviewer.services.prompt_finetune import prompt_validation_check

        return prompt_validation_check(manifest)
    units = manifest_unit_classes(manifest)
    if units is None:
        return None
    return check_validation_set(units, judged_classes(card.task, card.labels), min_units,
                                min_per_class)


def trainer_args(base_ref: str, epochs: int, margin: float, models_dir, promote: bool = True,
                 extra: Optional[List[str]] = None, threads: Optional[int] = None) -> List[str]:
    """The trainer's arguments after ``--manifest M`` (see ``medviewer finetune -h``);
    ``threads``: its torch CPU threads (``--threads``, unless ``extra`` sets them; None: the
    trainer takes every core, as from the command line)."""
    args = ["--base", base_ref, "--epochs", str(int(epochs)), "--margin", f"{float(margin):g}",
            "--models-dir", str(models_dir)]
    if not promote:
        args.append("--no-promote")
    extra = list(extra or [])
    if threads is not None and "--threads" not in extra:
        args += ["--threads", str(max(1, int(threads)))]
    return args + extra


def app_threads() -> int:
    """CPU threads for a fine-tune started from the app: all cores but one (the GUI's)."""
    from medviewer.ai.device import worker_threads

    return worker_threads()


class TrainerOutput:
    """The trainer's stdout read in chunks: JSON-line events (partial lines buffered) and any
    other text as log lines; then the run's outcome from its exit code."""

    def __init__(self):
        self.events: List[dict] = []
        self.gate: Optional[dict] = None
        self.result: Optional[dict] = None  # the "done" event
        self.error: Optional[str] = None  # an "error" event's message
        self._buffer = b""

    def feed(self, data: bytes) -> List[object]:
        """New complete lines of ``data``: event dicts and text lines, in order."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [x for x in (self._line(raw) for raw in lines) if x is not None]

    def flush(self) -> List[object]:
        """A last line without its newline (the process ended)."""
        raw, self._buffer = self._buffer, b""
        item = self._line(raw) if raw.strip() else None
        return [] if item is None else [item]

    def _line(self, raw: bytes):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            return text
        self.events.append(event)
        kind = event.get("event")
        if kind == "gate":
            self.gate = event
        elif kind == "done":
            self.result = event
        elif kind == "error":
            self.error = str(event.get("message", ""))
        return event

    def outcome(self, exit_code: int, cancel_requested: bool, stderr_tail: str = "") -> tuple:
        """("done", the done event) / ("cancelled", None) / ("failed", message)."""
        kinds = {e.get("event") for e in self.events}
        if exit_code == 0 and "done" in kinds:
            return "done", self.result
        if "cancelled" in kinds or exit_code == EXIT_CANCELLED or cancel_requested:
            return "cancelled", None
        tail = stderr_tail.splitlines()
        msg = self.error or (tail[-1] if tail else "no message")
        return "failed", f"training exited with code {exit_code}: {msg}"


def trainer_parser(prog: str, workspace: bool = False):
    """The trainer's argument parser (``workspace``: with ``--workspace``/``--manifest-only``)."""
    from medviewer.ai.training.cli_args import build_parser

    return build_parser(prog=prog, workspace=workspace)


def run_trainer(args) -> int:
    """Run the trainer in this process (JSON lines on stdout); its exit code."""
    from medviewer.ai.training.run import run

    return run(args)
