"""Engine-agnostic slice propagation (core/propagation.py) with toy step functions: where the
walk goes, where it stops (empty, collapse, leak, anchors, agreement with an existing result)
and which slices it leaves alone."""
import numpy as np
import pytest

from medviewer.core.propagation import propagate


def _ball(shape=(21, 40, 40), centre=(10, 20, 20), radius=8.0):
    zz, yy, xx = np.indices(shape)
    return ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) <= radius ** 2


class Recorder:
    """A step that returns the truth on slice k where it touches the previous mask."""

    def __init__(self, truth):
        self.truth, self.calls = truth, []

    def __call__(self, k, prev):
        self.calls.append(k)
        return self.truth[k] if (self.truth[k] & prev).any() else np.zeros_like(prev)


def test_walks_both_ways_and_stops_where_the_object_ends():
    truth = _ball()
    step = Recorder(truth)
    out = propagate(truth.shape, truth[10], 10, step, min_ratio=0.0, max_ratio=100.0)
    assert np.array_equal(out, truth)
    # each direction asks one slice past the object (the empty one) and no further
    assert sorted(step.calls) == list(range(1, 10)) + list(range(11, 20))


def test_collapse_and_leak_stop_a_direction():
    truth = _ball()
    odd = truth.copy()
    odd[14] = True  # slice 14 leaks into the whole slice
    odd[6] = False
    odd[6, 20, 20] = True  # slice 6 collapses to one pixel
    step = Recorder(odd)
    out = propagate(truth.shape, truth[10], 10, step)
    assert np.array_equal(out[7:14], truth[7:14])
    assert not out[14:].any() and not out[:7].any()
    assert 15 not in step.calls and 5 not in step.calls


def test_max_slices_and_empty_start():
    truth = _ball()
    out = propagate(truth.shape, truth[10], 10, Recorder(truth), min_ratio=0.0,
                    max_ratio=100.0, max_slices=2)
    assert np.flatnonzero(out.any(axis=(1, 2))).tolist() == [8, 9, 10, 11, 12]
    calls = []
    empty = propagate(truth.shape, np.zeros((40, 40), bool), 10,
                      lambda k, p: calls.append(k) or p)
    assert not empty.any() and calls == []


def test_anchors_are_left_as_they_are_and_stop_the_walk():
    truth = _ball()
    existing = np.zeros(truth.shape, bool)
    existing[13] = truth[13] & (np.arange(40) < 20)[None, :]  # the user's half mask there
    existing[16] = truth[16]
    step = Recorder(truth)
    out = propagate(truth.shape, truth[10], 10, step, existing=existing, anchors=(13, 10),
                    min_ratio=0.0, max_ratio=100.0)
    assert 13 not in step.calls and 14 not in step.calls
    assert np.array_equal(out[13:], existing[13:])  # beyond the anchor: untouched
    assert np.array_equal(out[:13], truth[:13])


def test_agreement_with_the_existing_result_stops_the_rewrite():
    truth = _ball()
    existing = truth.copy()
    existing[3] = False  # an existing oddity far away must survive a local correction
    corrected = truth[10].copy()
    corrected[20, 20] = False  # a one-pixel change on the start slice
    step = Recorder(truth)
    out = propagate(truth.shape, corrected, 10, step, existing=existing)
    assert sorted(step.calls) == [9, 11]  # both neighbours agree: nothing else is asked
    assert np.array_equal(out[10], corrected)
    others = np.ones(21, bool)
    others[10] = False
    assert out[others].tobytes() == existing[others].tobytes()
    # an unchanged start slice rewrites nothing and asks the step nothing
    step0 = Recorder(np.roll(truth, 5, axis=1))
    same = propagate(truth.shape, existing[10], 10, step0, existing=existing)
    assert step0.calls == [] and same.tobytes() == existing.tobytes()
    # a step that disagrees (shifts the object) rewrites until it agrees again
    shifted = np.roll(truth, 3, axis=2)
    out2 = propagate(truth.shape, shifted[10], 10, Recorder(shifted), existing=existing,
                     min_ratio=0.0, max_ratio=100.0)
    assert np.array_equal(out2[4:17], shifted[4:17])


def test_bad_arguments():
    with pytest.raises(ValueError):
        propagate((5, 4, 4), np.ones((3, 3), bool), 0, lambda k, p: p)
    with pytest.raises(ValueError):
        propagate((5, 4, 4), np.ones((4, 4), bool), 7, lambda k, p: p)
    with pytest.raises(ValueError):
        propagate((5, 4, 4), np.ones((4, 4), bool), 2, lambda k, p: np.ones((2, 2), bool))
