"""Fine-tuning entry point: ``python -m medviewer.ai.training`` (torchrun-compatible child process).

Reads a training manifest *file* (written by ``medviewer.storage.manifest_build``), fine-tunes a
base model version on its train entries, evaluates on its frozen validation entries, writes a
new ``<user models>/<name>/<version>/`` folder atomically and promotes it when the gate passes.
Progress goes to stdout as JSON lines (see :mod:`medviewer.ai.training.events`). torch is
imported only when a run starts. Modules: ``cli_args`` (the shared argument parser), ``run``
(orchestration, exit codes), ``data`` (manifest -> tensors), ``loop`` (epochs, early stopping),
``evaluate`` (the gate's metric), ``ddp`` (torchrun / DistributedDataParallel), ``events``.
"""
from __future__ import annotations

__all__ = ["main"]


def main(argv=None) -> int:
    """Parse ``argv`` and run one fine-tuning job; returns the process exit code."""
    from medviewer.ai.training.run import main as _main

    return _main(argv)
