"""Session and signals: the single source of truth that views follow."""
import numpy as np
import pytest

from medviewer.core.geometry import Geometry
from medviewer.core.session import Session
from medviewer.core.signals import Signal
from medviewer.core.volume import Volume, WindowHint


def _vol(shape=(10, 20, 30), window=WindowHint(40, 400)):
    return Volume(np.arange(np.prod(shape), dtype=np.float32).reshape(shape),
                  Geometry(shape=shape, spacing=(0.5, 0.5, 2.0), origin=(10, 20, 30)),
                  modality="CT", units="HU", window=window)


def test_signal_connect_emit_disconnect_and_errors():
    s = Signal("x")
    got = []
    s.connect(got.append)
    s.connect(got.append)  # connecting twice is a no-op
    s.emit(1)
    assert got == [1] and len(s) == 1

    def boom(_):
        raise RuntimeError("slot failed")

    s.connect(boom)
    other = []
    s.connect(other.append)
    with pytest.raises(RuntimeError):
        s.emit(2)
    assert got == [1, 2] and other == [2]  # later slots still ran
    s.disconnect(got.append)
    s.disconnect(boom)
    s.emit(3)
    assert got == [1, 2] and other == [2, 3]
    s.disconnect()
    assert len(s) == 0


def test_add_volume_centres_cursor_and_sets_window():
    ses = Session()
    events = []
    ses.active_changed.connect(lambda v: events.append(("active", v)))
    ses.window_changed.connect(lambda c, w: events.append(("window", c, w)))
    ses.cursor_changed.connect(lambda i: events.append(("cursor", i)))
    v = _vol()
    ses.add_volume(v)
    assert ses.active is v and ses.cursor_zyx == (5, 10, 15)
    assert ses.window == (40.0, 400.0)
    assert [e[0] for e in events] == ["active", "window", "cursor"]


def test_cursor_clamps_and_lps_round_trip():
    ses = Session()
    v = _vol()
    ses.add_volume(v)
    seen = []
    ses.cursor_changed.connect(seen.append)
    ses.set_cursor_index((100, -3, 7.6))
    assert ses.cursor_zyx == (9, 0, 8)
    lps = v.geometry.index_zyx_to_lps((3, 4, 5))
    ses.set_cursor_lps(lps)
    assert ses.cursor_zyx == (3, 4, 5)
    assert np.allclose(ses.cursor_lps, lps)
    ses.set_cursor_index((3, 4, 5))  # unchanged: no event
    assert seen == [(9, 0, 8), (3, 4, 5)]
    assert ses.cursor_value() == float(v.array[3, 4, 5])


def test_window_default_from_percentiles_and_set_window():
    ses = Session()
    ses.add_volume(_vol(window=None))
    c, w = ses.window
    assert w > 0 and ses.window_name.startswith("Percentile")
    ses.set_window(-600, 1500, "CT Lung")
    assert ses.window == (-600.0, 1500.0) and ses.window_name == "CT Lung"


def test_replace_and_remove_volume():
    ses = Session()
    a, b = _vol(), _vol()
    ses.add_volume(a)
    ses.add_volume(b, activate=False)
    assert ses.active is a
    c = _vol()
    ses.replace_volume(a, c)
    assert ses.active is c and ses.volumes == [c, b]
    ses.remove_volume(c)
    assert ses.active is b
    ses.remove_volume(b)
    assert ses.active is None and ses.cursor_lps is None
