"""``python -m medviewer.ai.training ...`` (also under ``torchrun -m``): run one fine-tuning job.

The process ends with ``os._exit`` once the run has finished (files committed or the staging
folder removed, streams flushed): tearing down a torch interpreter takes most of a second,
which would make a cancel feel slow.
"""
import os
import sys

from medviewer.ai.training.run import main

if __name__ == "__main__":
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
