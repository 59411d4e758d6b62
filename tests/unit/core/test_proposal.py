"""Proposals and label comparison on real segmentations: TotalSegmentator's reference
('person', the normal model) and its fast model ('proposal') of the same CT."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medviewer.core.label_compare import compare_labels
from medviewer.core.labels import LabelTable
from medviewer.core.proposal import (HATCH_ALPHA, Proposal, label_mapping, plan_accept,
                                     proposal_rgba)

from _core_data import DATA

TOTALSEG = DATA / "totalseg" / "tests" / "reference_files"


def _seg(name: str) -> np.ndarray:
    img = nib.load(str(TOTALSEG / name))
    return np.ascontiguousarray(np.asarray(img.dataobj).astype(np.uint8).T)  # (z, y, x)


@pytest.fixture(scope="module")
def pair():
    person = _seg("example_seg.nii.gz")
    model = _seg("example_seg_fast.nii.gz")
    return person, model


def _mapping_same(values):
    return {int(v): int(v) for v in values}


def test_accept_keeps_painted_voxels_unless_replace(pair):
    person, model = pair
    # the person labelled only a few organs; the model proposes everything
    mine = np.where(np.isin(person, [1, 2, 5]), person, 0).astype(np.uint8)
    values = [int(v) for v in np.unique(model) if v]
    idx, _, new, kept, *_ = plan_accept(mine, model, _mapping_same(values))
    flat = mine.reshape(-1).copy()
    flat[idx] = new
    merged = flat.reshape(mine.shape)
    painted = mine != 0
    assert np.array_equal(merged[painted], mine[painted])  # every painted voxel kept
    free = ~painted & (model != 0)
    assert np.array_equal(merged[free], model[free])
    assert not merged[~painted & (model == 0)].any()
    assert kept == int(np.count_nonzero(painted & (model != 0)))
    assert np.all(idx[1:] > idx[:-1]) and np.all(mine.reshape(-1)[idx] != new)
    # replace: the proposal wins wherever it proposes something
    idx, _, new, kept, *_ = plan_accept(mine, model, _mapping_same(values), replace=True)
    flat = mine.reshape(-1).copy()
    flat[idx] = new
    merged = flat.reshape(mine.shape)
    assert kept == 0
    assert np.array_equal(merged[model != 0], model[model != 0])
    assert np.array_equal(merged[model == 0], mine[model == 0])


def test_accept_one_label_or_one_slice_only(pair):
    person, model = pair
    empty = np.zeros_like(person)
    v = int(np.bincount(model.reshape(-1))[1:].argmax() + 1)  # the largest organ
    idx, _, new, *_ = plan_accept(empty, model, {v: 40})
    assert set(np.unique(new).tolist()) == {40}
    assert np.array_equal(np.sort(idx), np.flatnonzero(model.reshape(-1) == v))
    z = int(np.argmax((model != 0).sum(axis=(1, 2))))
    values = [int(u) for u in np.unique(model) if u]
    for axis, index in ((0, z), (2, model.shape[2] // 2)):
        idx, _, new, *_ = plan_accept(empty, model, _mapping_same(values), axis=axis,
                                       index=index)
        coords = np.unravel_index(idx, model.shape)
        assert np.all(coords[axis] == index)
        sl = [slice(None)] * 3
        sl[axis] = index
        assert idx.size == int(np.count_nonzero(model[tuple(sl)]))


def test_label_mapping_by_name_free_value_placeholder_or_new(pair):
    person, _ = pair
    model_table = {"labels": [{"value": 1, "name": "liver"}, {"value": 2, "name": "spleen"},
                              {"value": 3, "name": "kidney_right"}, {"value": 4, "name": "lung"}]}
    mine = LabelTable.from_names({1: "Lesion", 2: "Label 2", 3: "Label 3", 7: "Spleen"})
    present = {1: 100, 3: 5}  # 'Label 3' has voxels: it is a person's label
    mapping, changes = label_mapping(model_table, [1, 2, 3, 4], mine, present)
    assert mapping[2] == 7  # same name (case-insensitive)
    assert mapping[4] == 4  # a free value
    assert mapping[1] not in (1, 2, 3, 4, 7) and mapping[3] not in (1, 2, 3, 4, 7)
    assert len({mapping[1], mapping[3]}) == 2
    renames = [c for c in changes if c[3]]
    assert renames == []  # 'Label 2' is a placeholder but no model label needs value 2
    mapping, changes = label_mapping({"labels": [{"value": 2, "name": "liver"}]}, [2], mine, present)
    assert mapping == {2: 2} and changes[0][:2] == (2, "liver") and changes[0][3]  # renamed


def test_proposal_drawn_outlined_and_hatched_not_filled(pair):
    _, model = pair
    z = int(np.argmax((model != 0).sum(axis=(1, 2))))
    img = model[z]
    lut = LabelTable.from_dict({int(v): f"L{v}" for v in np.unique(model) if v}).lut(1.0)
    rgba = proposal_rgba(img, lut)
    assert rgba.shape == img.shape + (4,)
    assert np.all(rgba[img == 0, 3] == 0)
    labelled = img != 0
    alpha = rgba[..., 3][labelled]
    assert set(np.unique(alpha).tolist()) <= {0, HATCH_ALPHA, 255}
    assert 0.2 < np.mean(alpha == 0) < 0.9  # hatched: much of the inside stays see-through
    drawn = rgba[..., 3] > 0
    assert np.all(rgba[drawn, :3] == lut[img[drawn], :3])  # in each label's own colour


def test_proposal_is_read_only_and_parts_come_out(pair):
    _, model = pair
    table = {"labels": [{"value": int(v), "name": f"organ {v}"} for v in np.unique(model) if v]}
    prop = Proposal.make(model, table, "rec", "fast 1.0")
    assert not prop.labels.flags.writeable and model.flags.writeable
    v = max(prop.counts, key=prop.counts.get)
    rest = prop.without(v)
    assert v not in rest.counts and rest.counts == {k: n for k, n in prop.counts.items() if k != v}
    z = int(np.argmax((model != 0).sum(axis=(1, 2))))
    rest = prop.without(axis=0, index=z)
    assert not rest.labels[z].any() and np.array_equal(rest.labels[:z], model[:z])
    assert prop.names()[v] == f"organ {v}"


def test_compare_labels_dice_and_difference(pair):
    person, model = pair
    cmp = compare_labels(person, model)
    assert cmp.differ == int(np.count_nonzero(person != model)) and cmp.total == person.size
    for v, d in cmp.dice.items():
        a, b = person == v, model == v
        assert d == pytest.approx(2 * np.count_nonzero(a & b) / (a.sum() + b.sum()))
    assert set(cmp.dice) == set(int(v) for v in np.union1d(np.unique(person), np.unique(model)) if v)
    same = compare_labels(person, person)
    assert same.identical and all(d == 1.0 for d in same.dice.values())


def test_plan_in_the_bounding_box_is_the_plan_of_the_whole_volume(pair):
    """Accepting looks only inside the proposal's box: the same voxels as a look at the whole
    volume, for all of it, one label and one slice; locked labels are never changed."""
    person, model = pair
    liver = int(np.bincount(model.reshape(-1))[1:].argmax() + 1)
    only = np.where(model == liver, model, 0).astype(np.uint8)  # a proposal of one organ
    prop = Proposal.make(only, {"labels": [{"value": liver, "name": "liver"}]}, "r")
    zs, ys, xs = np.nonzero(only)
    assert prop.box == (slice(zs.min(), zs.max() + 1), slice(ys.min(), ys.max() + 1),
                        slice(xs.min(), xs.max() + 1))
    assert np.prod([s.stop - s.start for s in prop.box]) < only.size / 2
    mine = np.where(np.isin(person, [liver, 2, 5]), person, 0).astype(np.uint8)
    z = int(zs.mean())
    for kw in ({}, {"replace": True}, {"value": liver}, {"axis": 0, "index": z},
               {"axis": 2, "index": int(xs.mean())}, {"axis": 1, "index": 0}):
        whole = plan_accept(mine, only, {liver: 9}, **kw)
        boxed = plan_accept(mine, only, {liver: 9}, box=prop.box, **kw)
        for a, b in zip(whole[:3], boxed[:3]):
            assert np.array_equal(a, b)
        assert whole[3:] == boxed[3:]
        assert boxed.values == ((9,) if boxed.indices.size else ())
    assert ys.min() > 0 and not plan_accept(mine, only, {liver: 9}, axis=1, index=0,
                                            box=prop.box).indices.size  # outside the box
    # replace over a locked label: its voxels stay, the plan says how many
    locked = np.zeros(256, bool)
    locked[liver] = True
    plan = plan_accept(mine, only, {liver: 9}, replace=True, box=prop.box, locked=locked)
    on_liver = (only != 0) & (mine == liver)
    assert plan.locked == int(on_liver.sum()) > 0
    assert not np.isin(plan.indices, np.flatnonzero(on_liver.reshape(-1))).any()
    assert np.array_equal(plan.old, mine.reshape(-1)[plan.indices])
    assert not plan.indices.flags.writeable
