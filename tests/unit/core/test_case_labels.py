"""Case labels: class lists from files, series- and slice-level findings, (de)serialisation."""
import json

import pytest

from medviewer.core.case_labels import CaseLabels, ClassList


def test_default_class_list_and_files(tmp_path):
    cl = ClassList.default()
    assert "pneumonia" in cl and cl.names[0] == "normal" and len(cl) == 8
    txt = tmp_path / "classes.txt"
    txt.write_text("# chest findings\nnormal\n\npneumonia\n  nodule \n")
    assert ClassList.from_file(txt).names == ["normal", "pneumonia", "nodule"]
    js = tmp_path / "classes.json"
    js.write_text(json.dumps(["a", "b"]))
    assert ClassList.from_file(js).names == ["a", "b"]
    with pytest.raises(ValueError):
        ClassList(["a", "a"])
    with pytest.raises(ValueError):
        ClassList([])


def test_series_and_slice_labels_with_signals_and_round_trip():
    cases = CaseLabels(ClassList.default())
    calls = []
    cases.changed.connect(lambda *a: calls.append(1))
    cases.set("pneumonia", True)
    cases.set("effusion", False)
    cases.set("pneumonia", True)  # no change, no signal
    assert cases.get("pneumonia") is True and cases.get("effusion") is False
    assert cases.get("nodule") is None and cases.present() == ["pneumonia"]
    cases.set_slice(12, "nodule", True)
    cases.set_slice(40, "nodule", False)
    cases.set_slice(40, "nodule", None)  # unset removes the slice entry
    assert cases.get_slice(12, "nodule") is True and 40 not in cases.slices
    assert len(calls) == 5
    assert cases.toggle("effusion") is True and cases.get("effusion") is True
    d = json.loads(json.dumps(cases.to_dict()))
    assert d["series"] == {"pneumonia": True, "effusion": True}
    assert d["slices"] == {"12": {"nodule": True}}
    back = CaseLabels.from_dict(d)
    assert back.to_dict() == cases.to_dict() and back.class_list == cases.class_list
    cases.set("effusion", None)
    assert "effusion" not in cases.series
    cases.clear()
    assert cases.is_empty()


def test_unknown_class_is_rejected():
    cases = CaseLabels(ClassList(["normal", "pneumonia"]))
    with pytest.raises(KeyError):
        cases.set("fracture", True)
    with pytest.raises(KeyError):
        cases.set_slice(3, "fracture", True)
    with pytest.raises(KeyError):
        CaseLabels.from_dict({"series": {"fracture": True}}, ClassList(["normal"]))
