"""The one argument parser of ``python -m medviewer.ai.training`` and ``medviewer finetune``."""
from __future__ import annotations

import argparse
from typing import Optional

from medviewer.core.val_check import DEFAULT_MIN_PER_CLASS, DEFAULT_MIN_UNITS

__all__ = ["build_parser", "config_of", "TASK_DEFAULTS"]

# defaults that depend on the task (None on the command line: take these)
TASK_DEFAULTS = {"segmentation": {"lr": 5e-4, "batch_size": 4, "margin": 0.01},
                 "classification": {"lr": 3e-4, "batch_size": 16, "margin": 0.01},
                 # the promptable model: margin in clicks (mean NoC@85, lower is better)
                 "interactive": {"lr": 2e-4, "batch_size": 8, "margin": 0.5, "steps": 60}}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser(prog: str = "python -m medviewer.ai.training",
                 workspace: bool = False) -> argparse.ArgumentParser:
    """Fine-tuning options. ``workspace=True`` (``medviewer finetune``) adds ``--workspace`` and
    makes ``--manifest`` optional (the manifest is then built from the workspace's store)."""
    p = argparse.ArgumentParser(
        prog=prog, description="Fine-tune a model version on corrected labels (a training "
        "manifest); writes a new version and promotes it when it passes the gate. Progress: "
        "JSON lines on stdout. Runs under 'torchrun --nproc_per_node=N -m "
        "medviewer.ai.training' too (DDP).")
    if workspace:
        p.add_argument("--workspace", type=str, default=None,
                       help="label store workspace: build the training manifest from it first")
        p.add_argument("--val-fraction", type=float, default=0.2,
                       help="share of new split units frozen as validation (default 0.2)")
        p.add_argument("--manifest-only", action="store_true",
                       help="build the manifest from the workspace, print its path as a JSON "
                            "line and stop (e.g. to train on a cluster)")
    p.add_argument("--manifest", type=str, required=not workspace, default=None,
                   help="training manifest JSON file (medviewer.core.manifest)")
    p.add_argument("--base", "--model", dest="base", required=True, metavar="NAME[:VER]",
                   help="base model (no version: the active one)")
    p.add_argument("--models-dir", type=str, default=None,
                   help="user models folder (default $MEDVIEWER_MODELS or ~/MedViewer-models)")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: by task)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="per-process batch size (default: by task)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=_positive_int, default=5,
                   help="stop after this many validations without improvement")
    p.add_argument("--margin", type=_non_negative, default=None,
                   help="gate: promote unless the main metric is worse than the active "
                        "version's by more than this (default 0.01; the promptable model: "
                        "0.5 clicks of mean NoC@85)")
    p.add_argument("--min-val-units", type=_positive_int, default=DEFAULT_MIN_UNITS,
                   help="gate only with at least this many frozen validation units "
                        f"(default {DEFAULT_MIN_UNITS}); fewer: refused, nothing trained")
    p.add_argument("--min-val-per-class", type=_non_negative_int, default=DEFAULT_MIN_PER_CLASS,
                   help="... and every class in at least this many of them "
                        f"(default {DEFAULT_MIN_PER_CLASS}; 0: no per-class minimum)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-promote", action="store_true",
                   help="write the new version but never make it active")
    p.add_argument("--val-every", type=_positive_int, default=1,
                   help="validate every N epochs (and after the last)")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    g = p.add_argument_group("promptable model (task interactive: trains on prompt records)")
    g.add_argument("--steps", type=_positive_int, default=None,
                   help="training steps (default 60; --epochs is not used)")
    g.add_argument("--replay", choices=("auto", "none"), default="auto",
                   help="auto: mix in the built-in training data from ../shared/data when it "
                        "is there, so the model keeps what it knew; none: prompt records only")
    g.add_argument("--replay-fraction", type=float, default=0.5,
                   help="share of each batch drawn from the replayed data (default 0.5)")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads per node, every model (default: every core; the "
                        "app passes all cores but one, so that the GUI keeps a core)")
    g.add_argument("--max-clicks", type=_positive_int, default=20,
                   help="click protocol: most clicks per validation record (default 20)")
    return p


def config_of(args: argparse.Namespace, task: Optional[str] = None) -> dict:
    """All arguments as plain values, task defaults filled in (for model.json)."""
    cfg = {k: v for k, v in vars(args).items()}
    if task in TASK_DEFAULTS:
        for key, value in TASK_DEFAULTS[task].items():
            if cfg.get(key) is None:
                cfg[key] = value
    return cfg
