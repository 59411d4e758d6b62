"""Measure `ood_score` distributions of the built-in models on in- and out-of-domain real images.

pneumonia-cxr / pneumonia-cxr-smallcnn: PneumoniaMNIST test images (in; the threshold was set
on the validation split), the pydicom-data radiographs RG1/RG3 (adult, full size), slices of
the chest CT (TCIA), of TotalSegmentator's CT and MR and of the MNI152 T1 brain (out).
ct-abdomen-organs: per slice, the held-out slices of TotalSegmentator's two training CTs (in),
the chest CT, the MR and MNI152 slices and the RG1 radiograph (out); per case (median over up
to 8 slices, what a whole-volume run reports). Images are read by the app's own readers and
scored by `medviewer.ai.ood` exactly as a prediction is. Usage: python benchmarks/ood_scores.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, SHARED_DATA, emit  # noqa: E402

REF = SHARED_DATA / "totalseg" / "tests" / "reference_files"
MNI = SHARED_DATA / "nilearn_mni152" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def _radiographs():
    import pydicom.data

    from medviewer.io.load import open_first

    return {n: open_first([pydicom.data.get_testdata_file(f"{n}.dcm")])
            for n in ("RG1_UNCI", "RG3_UNCI")}


def _volumes():
    from medviewer.io.load import open_first

    return {"chest CT (TCIA)": open_first([str(CHEST_CT)]),
            "TotalSeg MR": open_first([str(REF / "example_mr_sm.nii.gz")]),
            "MNI152 T1": open_first([str(MNI)])}


def _stats(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"n": int(v.size), "min": round(float(v.min()), 3),
            "median": round(float(np.median(v)), 3), "p99": round(float(np.percentile(v, 99)), 3),
            "max": round(float(v.max()), 3)}


def _report(card, name: str, scores) -> dict:
    row = {"model": card.ref, "data": name, **_stats(scores),
           "out_fraction": round(float((np.asarray(scores) > card.ood["threshold"]).mean()), 3)}
    emit(row)
    return row


def _window(vol):
    w = vol.window
    return None if w is None else (float(w.center), float(w.width))


def classifier(card, rgs, vols) -> list:
    from medviewer.ai import ood
    from medviewer.ai.registry import load_model
    from medviewer.ai.starters.pneumonia import load_split

    model, ref = load_model(card), ood.OodReference.from_card(card)

    def scores(images, invert=False, window=None):
        return ref.scores(*ood.sample_stats(model, card, ood.image_inputs(
            card, images, invert, window), batch=128))

    rows = [_report(card, "PneumoniaMNIST test (in)", scores(load_split("test")[0]))]
    for n, v in rgs.items():
        rows.append(_report(card, f"{n} radiograph", scores([v.array[0]], v.invert, _window(v))))
    for n, v in vols.items():
        zs = ood.slice_sample((0, v.shape[0]), 20)
        rows.append(_report(card, f"{n}, 20 slices (out)",
                            scores([v.array[z] for z in zs], False, _window(v))))
    return rows


def segmenter(card, rgs, vols) -> list:
    from medviewer.ai import ood
    from medviewer.ai.registry import load_model
    from medviewer.ai.starters import ct_data

    model, ref = load_model(card), ood.OodReference.from_card(card)

    def scores(arr, spacing, zs):
        return ref.scores(*ood.sample_stats(model, card, ood.volume_inputs(card, arr, spacing, zs)))

    held = []
    for case in ct_data.load_cases():
        held += list(scores(case.ct, case.spacing_zyx, [int(z) for z in case.split(True)]))
    rows = [_report(card, "TotalSeg held-out abdominal slices (in)", held)]
    for n, v in vols.items():
        sp = tuple(float(s) for s in v.geometry.spacing[::-1])
        rows.append(_report(card, f"{n}, every slice", scores(v.array, sp, range(v.shape[0]))))
        case = ood.assess_volume(model, card, v.array, sp, (0, v.shape[0]))
        emit({"model": card.ref, "data": f"{n}, whole-volume run", **case.to_dict()})
    v = rgs["RG1_UNCI"]
    sp = tuple(float(s) for s in v.geometry.spacing[::-1])
    rows.append(_report(card, "RG1_UNCI radiograph (forced)", scores(v.array, sp, [0])))
    return rows


def main() -> int:
    from medviewer.ai.registry import ModelRegistry

    reg = ModelRegistry()
    rgs, vols = _radiographs(), _volumes()
    for name in ("pneumonia-cxr", "pneumonia-cxr-smallcnn"):
        classifier(reg.get(name), rgs, vols)
    segmenter(reg.get("ct-abdomen-organs"), rgs, vols)
    return 0


if __name__ == "__main__":
    sys.exit(main())
