"""The validation-size check: units counted, classes per unit, what is missing in words."""
import pytest

from medviewer.core.val_check import check_validation_set, judged_classes


def test_one_unit_is_too_small_and_says_what_is_missing():
    c = check_validation_set({"h:z8": {"liver", "kidney_right"}}, ["liver", "spleen",
                                                                    "kidney_right"])
    assert not c["ok"] and c["units"] == 1
    assert c["per_class"] == {"liver": 1, "spleen": 0, "kidney_right": 1}
    assert c["missing"][0] == "1 validation unit, at least 5 needed (4 more)"
    assert c["missing"][1] == ("classes in fewer than 2 validation units: liver in 1, spleen in 0, "
                               "kidney_right in 1")
    assert c["message"].startswith("not gated: validation set too small — 1 validation unit")


def test_enough_units_and_classes_and_configurable_minimum():
    units = {f"u{i}": ({"normal"} if i % 2 else {"pneumonia"}) for i in range(5)}
    ok = check_validation_set(units, ["normal", "pneumonia"])
    assert ok["ok"] and ok["missing"] == [] and ok["per_class"] == {"normal": 2, "pneumonia": 3}
    assert not check_validation_set(units, ["normal", "pneumonia"], min_units=6)["ok"]
    assert not check_validation_set(units, ["normal", "pneumonia"], min_per_class=3)["ok"]
    assert check_validation_set({"u": {"a"}}, ["a", "b"], min_units=1, min_per_class=0)["ok"]
    with pytest.raises(ValueError):
        check_validation_set(units, ["normal"], min_units=0)
    assert judged_classes("segmentation", ["background", "liver"]) == ["liver"]
    assert judged_classes("classification", ["normal", "pneumonia"]) == ["normal", "pneumonia"]
