"""The one driver of long-work generators: they yield ``(done, total[, message])`` steps and
return their result (``StopIteration.value``). The AI inference functions are written so."""
from __future__ import annotations

from typing import Callable, Generator, NamedTuple, Optional


class Step(NamedTuple):
    """One progress step of a generator job."""

    done: int
    total: int
    message: str = ""


def drive(gen: Generator, progress: Optional[Callable[..., None]] = None, message: str = ""):
    """Run ``gen`` to its end and return its result. Each step goes to
    ``progress(done, total, message)`` (a :class:`~medviewer.jobs.progress.Reporter` fits: it
    raises ``Cancelled`` once its token is set, which closes the generator); a step without
    a message gets ``message``."""
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            if progress is not None:
                done, total = int(step[0]), int(step[1])
                text = step[2] if len(step) > 2 and step[2] else message
                progress(done, total, text)
    finally:
        gen.close()
