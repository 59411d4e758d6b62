"""Annotation effort: active time with idle gaps capped, strokes and voxels (no Qt, no sleeps)."""
from medviewer.core.effort import EffortClock


class FakeTime:
    """A settable clock: the effort arithmetic is tested without waiting."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_idle_gaps_count_at_most_the_cap():
    t = FakeTime()
    e = EffortClock(t, idle_cap=60.0)
    e.touch()  # the first activity starts the clock
    t.now += 5
    e.stroke(100)
    t.now += 600  # a coffee break counts as 60 s
    e.stroke(50)
    t.now += 2
    e.touch()
    assert e.total.seconds == 5 + 60 + 2
    assert (e.total.strokes, e.total.voxels) == (2, 150)
    d = e.take()
    assert (d.seconds, d.strokes, d.voxels) == (67, 2, 150)
    t.now += 3
    e.stroke(7)
    d = e.take()
    assert (d.seconds, d.strokes, d.voxels) == (3, 1, 7)
    assert e.total.strokes == 3
    e.add(10.0, 4, 40)  # recovered from a journal
    assert (e.total.seconds, e.total.strokes, e.total.voxels) == (80, 7, 197)
    e.reset()
    assert (e.total.seconds, e.total.strokes) == (0, 0)
    t.now += 1000
    e.touch()  # no gap is counted across a reset
    assert e.total.seconds == 0
