"""LabelTable: editing, LUT, (de)serialisation and label-list files (TotalSegmentator, ITK-SNAP,
3D Slicer, JSON); LabelMap dtype widening."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medviewer.core.geometry import Geometry
from medviewer.core.labelmap import LabelMap
from medviewer.core.labels import PALETTE, Label, LabelTable

REPO = Path(__file__).resolve().parents[3]
TOTALSEG_CSV = REPO / "resources" / "labels" / "totalsegmentator_total_ct.csv"


def test_default_table_and_add_remove_emit_changed():
    t = LabelTable.default()
    assert [lab.name for lab in t] == [f"Label {i}" for i in range(1, 6)]
    assert list(t.labels) == [1, 2, 3, 4, 5] and t.max_value == 5
    calls = []
    t.changed.connect(lambda *a: calls.append(a))
    lab = t.add("tumour")
    assert lab.value == 6 and lab.color == PALETTE[5] and t.get(6) is lab
    t.remove(3)
    assert 3 not in t and t.add("x").value == 7  # never reuses a removed value
    t.rename(7, "vessel")
    t.set_color(7, (1, 2, 3))
    t.set_visible(7, False)
    t.set_locked(1, True)
    assert t.get(7).name == "vessel" and t.get(7).color == (1, 2, 3) and not t.get(7).visible
    assert t.locked_values() == [1]
    assert len(calls) == 7
    with pytest.raises(ValueError):
        t.add("dup", value=7)
    with pytest.raises(ValueError):
        t.add("too big", value=70000)
    with pytest.raises(KeyError):
        t.rename(99, "nope")


def test_lut_transparent_for_background_gaps_and_hidden():
    t = LabelTable([Label(1, "a", (10, 20, 30)), Label(4, "b", (40, 50, 60), visible=False)])
    lut = t.lut(0.4)
    assert lut.shape == (5, 4) and lut.dtype == np.uint8
    assert tuple(lut[1]) == (10, 20, 30, 102)
    assert lut[0, 3] == 0 and lut[2, 3] == 0 and lut[3, 3] == 0 and lut[4, 3] == 0
    assert tuple(LabelTable().lut(1.0).shape) == (1, 4)


def test_to_dict_round_trip_through_json():
    t = LabelTable.default()
    t.set_locked(2, True)
    t.set_visible(3, False)
    t.add("big", (9, 8, 7), value=300)
    back = LabelTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.to_dict() == t.to_dict()
    assert LabelTable.from_dict({"1": "liver", "7": "aorta"}).get(7).name == "aorta"


def test_totalsegmentator_csv_covers_every_value_of_the_reference_segmentation(shared_data):
    t = LabelTable.from_file(TOTALSEG_CSV)
    assert len(t) == 117 and t.max_value == 117
    assert t.get(1).name == "spleen" and t.get(5).name == "liver"
    seg = np.asarray(nib.load(shared_data / "totalseg" / "tests" / "reference_files"
                              / "example_seg.nii.gz").dataobj)
    present = set(np.unique(seg).tolist()) - {0}
    assert len(present) == 41 and max(present) == 117
    assert present <= set(t.labels)
    # colours are distinct between neighbours, all labels visible and unlocked
    assert all(lab.visible and not lab.locked for lab in t)
    assert t.get(1).color != t.get(2).color


def test_itksnap_label_description_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text(
        "################################################\n"
        "# ITK-SnAP Label Description File\n"
        "#    IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n"
        "    0     0    0    0        0  0  0    \"Clear Label\"\n"
        "    1   255    0    0        1  1  1    \"Liver\"\n"
        "    2     0  255    0        1  1  1    \"Right kidney\"\n"
        "   12     0    0  255      0.5  0  1    \"Hidden thing\"\n")
    t = LabelTable.from_file(p)
    assert list(t.labels) == [1, 2, 12]
    assert t.get(2).name == "Right kidney" and t.get(1).color == (255, 0, 0)
    assert t.get(12).color == (0, 0, 255) and not t.get(12).visible and t.get(1).visible


def test_slicer_colour_table(tmp_path):
    p = tmp_path / "Segmentation-label_ColorTable.ctbl"
    p.write_text("# Color table file Segmentation-label_ColorTable.ctbl\n"
                 "# 3 values\n"
                 "0 Background 0 0 0 0\n"
                 "1 liver 221 130 101 255\n"
                 "3 spleen 157 108 162 255\n"
                 "300 lesion 1 2 3 255\n")
    t = LabelTable.from_file(p)
    assert list(t.labels) == [1, 3, 300]
    assert t.get(1).name == "liver" and t.get(3).color == (157, 108, 162)
    assert t.get(300).name == "lesion"


def test_csv_with_colours_without_header_and_json_forms(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("# comment\n1,lung,10,20,30\n2,heart\n")
    t = LabelTable.from_file(p)
    assert t.get(1).color == (10, 20, 30) and t.get(2).name == "heart"
    j1 = tmp_path / "a.json"
    j1.write_text(json.dumps({"1": "spleen", "2": "kidney_right"}))
    assert [lab.name for lab in LabelTable.from_file(j1)] == ["spleen", "kidney_right"]
    j2 = tmp_path / "b.json"
    j2.write_text(json.dumps([{"value": 4, "name": "x", "color": [1, 2, 3]}]))
    assert LabelTable.from_file(j2).get(4).color == (1, 2, 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("value,name\n")
    with pytest.raises(ValueError):
        LabelTable.from_file(bad)


def test_labelmap_widens_to_uint16_when_label_300_is_added():
    g = Geometry((4, 5, 6))
    lm = LabelMap(g)
    assert lm.labels.dtype == np.uint8 and lm.n_labels == 5 and lm.lut().shape == (6, 4)
    lm.labels[1, 2, 3] = 4
    lm.table.add("big", value=300)
    assert lm.labels.dtype == np.uint16 and lm.labels[1, 2, 3] == 4
    assert lm.n_labels == 300 and lm.lut().shape == (301, 4)
    lm.labels[0, 0, 0] = 300
    assert lm.labels[0, 0, 0] == 300


def test_labelmap_adopts_array_and_adds_unknown_values_to_table():
    g = Geometry((2, 3, 4))
    arr = np.zeros((2, 3, 4), dtype=np.int16)
    arr[0, 0, 0], arr[1, 2, 3] = 7, 260
    lm = LabelMap(g, array=arr)
    assert lm.labels.dtype == np.uint16 and lm.labels.flags.writeable
    assert {1, 2, 3, 4, 5, 7, 260} == set(lm.table.labels)
    assert lm.voxel_counts() == {7: 1, 260: 1}
    with pytest.raises(ValueError):
        LabelMap(g, array=np.zeros((2, 3, 5), dtype=np.uint8))
    with pytest.raises(ValueError):
        LabelMap(g, array=-np.ones((2, 3, 4), dtype=np.int8))
