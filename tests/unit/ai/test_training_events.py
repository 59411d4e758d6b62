"""JSON-lines events and the SIGTERM/SIGINT cancel switch of the fine-tuning entry point."""
from __future__ import annotations

import io
import json
import os
import signal

import pytest

from medviewer.ai.training.events import Cancelled, CancelSwitch, Emitter


def test_events_are_strict_json_lines():
    buf = io.StringIO()
    em = Emitter(buf)
    em.emit("epoch", epoch=1, train_loss=float("nan"), val_metric=0.5, best=True)
    em.emit("done", version="1.1.0", nested={"x": [1.0, float("inf")]})
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first == {"event": "epoch", "epoch": 1, "train_loss": None, "val_metric": 0.5,
                     "best": True}
    assert json.loads(lines[1])["nested"] == {"x": [1.0, None]}


def test_progress_is_throttled_but_epoch_ends_go_out():
    buf = io.StringIO()
    em = Emitter(buf, min_interval_s=60.0)
    for step in range(1, 11):
        em.progress(1, 3, step, 10, 0.5)
    events = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [e["step"] for e in events] == [1, 10]


def test_disabled_emitter_writes_nothing():
    buf = io.StringIO()
    Emitter(buf, enabled=False).emit("start")
    assert buf.getvalue() == ""


def test_sigterm_raises_cancelled_and_critical_defers():
    switch = CancelSwitch().install()
    try:
        with pytest.raises(Cancelled):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs at the next bytecode
                pass
        switch.requested = False
        with switch.critical():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
            assert switch.requested  # remembered, not raised
        with pytest.raises(Cancelled):
            switch.check()
    finally:
        switch.uninstall()
    assert signal.getsignal(signal.SIGTERM) is not switch._handler
