"""Edits as deltas: stroke recording with locked labels, eraser, undo/redo and undo memory on a
512x512x300 label map."""
import numpy as np
import pytest

from medviewer.core.edits import Edit, StrokeRecorder, UndoStack, make_edit
from medviewer.core.geometry import Geometry
from medviewer.core.labelmap import LabelMap
from medviewer.core.painting import brush_indices, brush_segment_indices


def _small():
    g = Geometry((6, 40, 50), spacing=(0.8, 0.8, 2.0))
    return g, LabelMap(g)


def test_stroke_records_first_old_values_and_emits_once():
    g, lm = _small()
    lm.labels[3, 20, 20:30] = 2
    before = lm.labels.copy()
    seen = []
    lm.edited.connect(seen.append)
    rec = StrokeRecorder(lm, 1, "brush")
    a = rec.add(brush_indices(g, (3, 20, 22), 3.0, 0))
    b = rec.add(brush_indices(g, (3, 20, 25), 3.0, 0))  # overlaps the first dab
    assert len(a) and len(b) and not np.intersect1d(a, b).size  # overlap already label 1
    assert not seen  # nothing emitted during the stroke
    edit = rec.finish()
    assert seen == [edit] and edit.tool == "brush" and edit.label == 1
    assert np.all(np.diff(edit.indices) > 0) and edit.indices.dtype == np.int64
    assert np.array_equal(edit.old, before.reshape(-1)[edit.indices])
    assert np.all(edit.new == 1) and edit.voxels == int((lm.labels != before).sum())
    assert edit.nbytes == edit.voxels * (8 + 1 + 1)
    assert not edit.indices.flags.writeable
    with pytest.raises(RuntimeError):
        rec.add([0])


def test_voxel_painted_then_erased_within_a_stroke_is_not_recorded():
    g, lm = _small()
    rec = StrokeRecorder(lm, 3, "brush")
    idx = brush_indices(g, (1, 10, 10), 2.0, 0)
    rec.add(idx)
    rec.add(idx[:3], 0)
    edit = rec.finish()
    assert edit.voxels == len(idx) - 3 and set(edit.old.tolist()) == {0}
    rec2 = StrokeRecorder(lm, 3, "brush")
    rec2.add(idx[3:])  # already 3: nothing changes
    assert rec2.finish() is None


def test_locked_labels_are_never_overwritten_and_eraser_skips_them():
    g, lm = _small()
    lm.labels[2, 10:30, 10:30] = 4
    lm.labels[2, 10:30, 30:40] = 2
    lm.table.set_locked(4, True)
    before = lm.labels.copy()
    rec = StrokeRecorder(lm, 1, "brush")
    rec.add(brush_indices(g, (2, 20, 30), 8.0, 0))
    edit = rec.finish()
    assert np.all(lm.labels[before == 4] == 4)
    assert np.all(edit.old != 4) and np.any(edit.old == 2)
    er = StrokeRecorder(lm, 0, "eraser")
    er.add(brush_indices(g, (2, 20, 30), 12.0, 0), 0)
    erased = er.finish()
    assert np.all(lm.labels[before == 4] == 4)  # locked survived the eraser
    assert np.all(erased.new == 0) and np.all(erased.old != 4)
    disc = np.zeros(lm.labels.size, bool)
    disc[brush_indices(g, (2, 20, 30), 12.0, 0)] = True
    disc = disc.reshape(lm.labels.shape)
    assert np.all(lm.labels[disc & (before != 4)] == 0)
    # make_edit (fills) respects locks too, unless told otherwise
    all_idx = np.arange(lm.labels.size)
    e = make_edit(lm, all_idx, 5, 5, "fill3d")
    assert np.all(lm.labels.reshape(-1)[e.indices] != 4)
    assert make_edit(lm, all_idx, 5, 5, "fill3d", respect_locks=False).voxels == lm.labels.size


def test_undo_redo_and_apply_emits_effective_edit():
    g, lm = _small()
    stack = UndoStack()
    states = [lm.labels.copy()]
    for i, (label, c) in enumerate([(1, (1, 10, 10)), (2, (1, 12, 12)), (0, (1, 11, 11))]):
        rec = StrokeRecorder(lm, label, "eraser" if label == 0 else "brush")
        rec.add(brush_indices(g, c, 4.0, None), label)
        stack.push(rec.finish())
        states.append(lm.labels.copy())
    assert len(stack) == 3 and stack.can_undo and not stack.can_redo
    seen = []
    lm.edited.connect(seen.append)
    for k in (2, 1, 0):
        undone = stack.undo(lm)
        assert np.array_equal(lm.labels, states[k])
        assert np.array_equal(seen[-1].new, undone.old) and np.array_equal(seen[-1].old, undone.new)
    assert stack.undo(lm) is None and stack.can_redo
    for k in (1, 2, 3):
        stack.redo(lm)
        assert np.array_equal(lm.labels, states[k])
    assert stack.redo(lm) is None
    stack.undo(lm)
    stack.push(make_edit(lm, [0], 1, 1, "brush"))  # a new edit drops the redo branch
    assert not stack.can_redo
    assert stack.memory_bytes == sum(e.nbytes for e in stack._undo)
    stack.clear()
    assert stack.memory_bytes == 0 and not stack.can_undo


def test_undo_stack_drops_oldest_beyond_max_bytes():
    stack = UndoStack(max_bytes=1000)
    edits = [Edit(np.arange(i * 50, i * 50 + 50), np.zeros(50, np.uint8), np.ones(50, np.uint8), 1, "b")
             for i in range(5)]  # 500 bytes each
    for e in edits:
        stack.push(e)
    assert len(stack) == 2 and stack.peek_undo() is edits[-1] and stack.memory_bytes == 1000
    huge = Edit(np.arange(500), np.zeros(500, np.uint8), np.ones(500, np.uint8), 1, "b")
    stack.push(huge)
    assert len(stack) == 1 and stack.peek_undo() is huge  # the newest is always kept
    with pytest.raises(ValueError):
        Edit(np.array([3, 1]), np.zeros(2, np.uint8), np.ones(2, np.uint8))


def test_100_strokes_on_512x512x300_keep_undo_under_50mb_and_undo_redo_exactly():
    g = Geometry((300, 512, 512), spacing=(0.7, 0.7, 1.0))
    lm = LabelMap(g)
    rng = np.random.default_rng(3)
    lm.labels[100:200, 100:300, 100:300] = 2  # existing annotation that strokes paint over
    lm.labels[150:160, 200:260, 200:260] = 5
    lm.table.set_locked(5, True)
    original = lm.labels.copy()
    stack = UndoStack()
    total_voxels = 0
    for s in range(100):
        label = 0 if s % 10 == 9 else int(rng.choice([1, 3, 4]))
        rec = StrokeRecorder(lm, label, "eraser" if label == 0 else "brush")
        if label == 0:  # erase inside the existing annotation
            prev = np.array([rng.integers(100, 200), *rng.integers(150, 250, size=2)], dtype=float)
        else:
            prev = np.array([rng.integers(0, 300), *rng.integers(60, 450, size=2)], dtype=float)
        for _ in range(20):  # a drag of 20 dabs, 10 mm radius
            nxt = prev + np.array([0, *rng.normal(0, 6, size=2)])
            rec.add(brush_segment_indices(g, prev, nxt, 10.0, 0), label)
            prev = nxt
        edit = rec.finish()
        if edit is not None:
            total_voxels += edit.voxels
            stack.push(edit)
    final = lm.labels.copy()
    assert len(stack) == 100 and total_voxels > 100 * 2000  # realistic strokes, not empty ones
    assert stack.memory_bytes < 50 * 2**20
    assert stack.memory_bytes == total_voxels * 10  # int64 index + uint8 old + uint8 new
    assert np.array_equal(final[original == 5], original[original == 5])  # locked kept
    while stack.can_undo:
        stack.undo(lm)
    assert np.array_equal(lm.labels, original)
    while stack.can_redo:
        stack.redo(lm)
    assert np.array_equal(lm.labels, final)


def test_painting_an_unknown_big_label_widens_and_names_it_and_undo_of_removal():
    g, lm = _small()
    rec = StrokeRecorder(lm, 300, "brush")
    assert lm.labels.dtype == np.uint16 and lm.table.get(300).name == "Label 300"
    rec.add(brush_indices(g, (2, 20, 20), 3.0, 0))
    stack = UndoStack()
    stack.push(rec.finish())
    assert (lm.labels == 300).sum() == stack.peek_undo().voxels > 0
    painted = lm.labels.copy()
    stack.push(lm.remove_label(300))
    assert 300 not in lm.table and not (lm.labels == 300).any()
    stack.undo(lm)
    assert np.array_equal(lm.labels, painted) and 300 in lm.table
    assert lm.lut().shape == (301, 4) and lm.lut()[300, 3] > 0
    with pytest.raises(ValueError):
        lm.labels = np.zeros((1, 2, 3), np.uint8)


def test_voxel_counts_follow_strokes_cancel_undo_redo_and_widening():
    """The counts are counted once, then kept from each edit's voxels: always equal to a
    recount of the array (real TotalSegmentator labels as the start)."""
    import nibabel as nib

    from _core_data import DATA

    seg = nib.load(str(DATA / "totalseg" / "tests" / "reference_files" / "example_seg.nii.gz"))
    arr = np.ascontiguousarray(np.asarray(seg.dataobj).astype(np.uint8).T)
    g = Geometry(arr.shape, spacing=(1.5, 1.5, 1.5))
    lm = LabelMap(g, array=arr)

    def recount():
        c = np.bincount(lm.labels.reshape(-1))
        return {int(v): int(c[v]) for v in np.flatnonzero(c) if v}

    assert lm.voxel_counts() == recount()
    v0 = lm.version
    z = arr.shape[0] // 2
    centre = (z, arr.shape[1] // 2, arr.shape[2] // 2)
    rec = StrokeRecorder(lm, 7, "brush")
    rec.add(brush_indices(g, centre, 12.0, 0))
    assert lm.voxel_counts() == recount() and lm.version > v0  # mid-stroke too
    rec.cancel()
    assert lm.voxel_counts() == recount() and np.array_equal(lm.labels, arr)
    stack = UndoStack()
    rec = StrokeRecorder(lm, 0, "eraser")
    rec.add(brush_indices(g, centre, 15.0, 0))
    stack.push(rec.finish())
    assert lm.voxel_counts() == recount()
    stack.push(lm.set_voxels(np.flatnonzero(arr.reshape(-1) == 2), 300, 300, "fill"))  # widens
    assert lm.labels.dtype == np.uint16 and lm.voxel_counts() == recount()
    assert lm.voxel_counts()[300] == int((arr == 2).sum())
    stack.undo(lm)
    assert lm.voxel_counts() == recount()
    stack.undo(lm)
    stack.redo(lm)
    assert lm.voxel_counts() == recount()
    lm.labels[0, 0, :5] = 9  # written directly: say so
    lm.written()
    assert lm.voxel_counts() == recount()
    lm.labels = arr  # a new array: counted again
    assert lm.voxel_counts() == recount()
