"""`medviewer predict` / `medviewer models` on real data: PNGs, a DICOM radiograph, the chest CT."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom.data
import pytest
import torch
from PIL import Image

from medviewer.ai.architectures import build
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.weights import save_weights
from medviewer.cli import main
from medviewer.io.load import open_first

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("user_models")  # an empty $MEDVIEWER_MODELS per test


@pytest.fixture
def pngs(shared_data, tmp_path):
    """Six real PneumoniaMNIST test images as PNG files, plus one file that is not an image."""
    data = np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz")
    folder = tmp_path / "xrays"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(data["test_images"][i]).save(folder / f"case{i}.png")
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    return folder


def _records(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_pngs_to_json_lines(pngs, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    rc = main(["predict", "--model", "pneumonia-cxr", str(pngs), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0
    recs = _records(out.read_text())
    assert [Path(r["case"]).name for r in recs] == [f"case{i}.png" for i in range(6)]
    for r in recs:
        assert set(r["probabilities"]) == {"normal", "pneumonia"}
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["class"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["model"] == "pneumonia-cxr:1.0.0"
        assert isinstance(r["in_domain"], bool) and r["ood_score"] > 0 and r["forced"] is False
    assert sum(r["in_domain"] for r in recs) >= 5  # its own kind of image: in domain
    assert "broken.png" in err and "6 of 7 cases" in err


@pytest.mark.slow
def test_predict_dicom_radiograph_to_stdout_as_a_subprocess(tmp_path):
    rg = tmp_path / "rg"
    rg.mkdir()
    shutil.copy(pydicom.data.get_testdata_file("RG1_UNCI.dcm"), rg / "RG1_UNCI.dcm")
    proc = subprocess.run([sys.executable, "-m", "medviewer.cli", "predict", "--model",
                           "pneumonia-cxr:1.0.0", str(rg), "--out", "-"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (rec,) = _records(proc.stdout)
    assert rec["case"].endswith("RG1_UNCI.dcm") and rec["class"] in ("normal", "pneumonia")


def test_clear_errors(pngs, chest_ct_dir, tmp_path, capsys):
    assert main(["predict", "--model", "no-such-model", str(pngs), "--out", "-"]) == 1
    assert "no model named 'no-such-model'" in capsys.readouterr().err
    assert main(["predict", "--model", "pneumonia-cxr:9.9.9", str(pngs), "--out", "-"]) == 1
    assert "no version 9.9.9" in capsys.readouterr().err
    # a radiograph classifier given a CT volume: refused as outside its domain (exit 2) ...
    assert main(["predict", "--model", "pneumonia-cxr", str(chest_ct_dir), "--out", "-",
                 "--slice", "50"]) == 2
    err = capsys.readouterr().err
    assert "does not fit this image" in err and "CT" in err and "--force" in err
    # ... forced: a whole volume still needs one slice chosen
    assert main(["predict", "--model", "pneumonia-cxr", str(chest_ct_dir), "--out", "-",
                 "--force"]) == 1
    err = capsys.readouterr().err
    assert "100 slices" in err and "--slice" in err
    # ... forced on one slice: it runs, marked forced and outside the training data
    assert main(["predict", "--model", "pneumonia-cxr", str(chest_ct_dir), "--out", "-",
                 "--slice", "50", "--force"]) == 0
    (rec,) = _records(capsys.readouterr().out)
    assert rec["case"] == str(chest_ct_dir)
    assert rec["forced"] is True and rec["in_domain"] is False and rec["ood_score"] > 1
    assert main(["predict", "--model", "pneumonia-cxr", str(tmp_path / "missing"),
                 "--out", "-"]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def _tiny_seg_folder(root: Path, version="0.1.0", labels=("background", "soft tissue", "bone")):
    """A small MONAI U-Net model folder (untrained weights) for geometry and import tests."""
    params = {"spatial_dims": 2, "in_channels": 1, "out_channels": len(labels),
              "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}
    torch.manual_seed(0)
    net = build("monai_unet", params)
    folder = root / "tiny-seg" / version
    folder.mkdir(parents=True)
    sha = save_weights(net, folder / "weights.safetensors")
    card = {"name": "tiny-seg", "version": version, "task": "segmentation",
            "labels": list(labels),
            "input": {"dims": 2, "channels": 1, "spacing": [2.0, 2.0], "patch": [240, 240],
                      "intensity": {"type": "ct_window", "center": 40, "width": 400}},
            "architecture": {"name": "monai_unet", "params": params},
            "weights": {"file": "weights.safetensors", "sha256": sha},
            "metrics": {"dice_mean": 0.0}, "license": "Apache-2.0"}
    (folder / "model.json").write_text(json.dumps(card))
    (folder / "README.md").write_text("untrained test model\n")
    return folder


def test_models_import_list_and_refusals(tmp_path, user_models, capsys):
    src = _tiny_seg_folder(tmp_path / "incoming")
    assert main(["models", "import", str(src)]) == 0
    assert "imported tiny-seg:0.1.0" in capsys.readouterr().out
    assert (user_models / "tiny-seg/0.1.0/model.json").is_file()
    assert main(["models", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_ref = {m["ref"]: m for m in doc["models"]}
    assert by_ref["tiny-seg:0.1.0"]["source"] == "user"
    assert by_ref["tiny-seg:0.1.0"]["labels"] == ["background", "soft tissue", "bone"]
    assert by_ref["pneumonia-cxr:1.0.0"]["source"] == "built-in"
    assert by_ref["pneumonia-cxr:1.0.0"]["task"] == "classification"
    assert "accuracy" in by_ref["pneumonia-cxr:1.0.0"]["metrics"]
    assert main(["models"]) == 0
    human = capsys.readouterr().out
    assert "tiny-seg:0.1.0" in human and "pneumonia-cxr:1.0.0" in human
    # the same version again: refused, never overwritten
    assert main(["models", "import", str(src)]) == 1
    assert "already exists" in capsys.readouterr().err
    # weights that do not match the card's hash: refused
    bad = _tiny_seg_folder(tmp_path / "tampered", version="0.2.0")
    data = bytearray((bad / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bad / "weights.safetensors").write_bytes(bytes(data))
    assert main(["models", "import", str(bad)]) == 1
    assert "sha256" in capsys.readouterr().err
    assert not (user_models / "tiny-seg/0.2.0").exists()


@pytest.mark.slow
def test_predict_segmentation_on_the_chest_ct_writes_a_nifti_on_its_grid(
        tmp_path, chest_ct_dir, capsys):
    assert main(["models", "import", str(_tiny_seg_folder(tmp_path / "incoming"))]) == 0
    out = tmp_path / "ct_labels.nii.gz"
    rc = main(["predict", "--model", "tiny-seg", str(chest_ct_dir), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    img = nib.load(str(out))
    vol = open_first([chest_ct_dir])
    assert img.shape == (512, 512, 100)  # (x, y, z) in NIfTI order
    np.testing.assert_allclose(img.affine, vol.geometry.affine_ras(), atol=1e-4)
    labels = np.asarray(img.dataobj)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
    side = json.loads((tmp_path / "ct_labels.labels.json").read_text())
    assert [lab["name"] for lab in side["labels"]] == ["background", "soft tissue", "bone"]
    assert side["model"] == "tiny-seg:0.1.0" and side["slices"] == [0, 100]
    assert 0.0 <= side["uncertainty"] <= 1.0


def test_segmentation_model_refuses_png_and_needs_a_folder_for_many_cases(
        tmp_path, pngs, chest_ct_dir, capsys):
    assert main(["models", "import", str(_tiny_seg_folder(tmp_path / "incoming"))]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", "tiny-seg", str(pngs / "case0.png"),
                 "--out", str(tmp_path / "x.nii.gz")]) == 1
    assert "known voxel spacing" in capsys.readouterr().err
    assert main(["predict", "--model", "tiny-seg", str(chest_ct_dir), str(pngs),
                 "--out", str(tmp_path / "x.nii.gz")]) == 1
    assert "must be a folder" in capsys.readouterr().err
    # a folder output, one slice only: the CT gets a label map; the PNGs are skipped
    outdir = tmp_path / "labels"
    assert main(["predict", "--model", "tiny-seg", str(chest_ct_dir), str(pngs),
                 "--out", str(outdir), "--slice", "60"]) == 0
    written = sorted(p.name for p in outdir.iterdir())
    assert written == ["tcia_cmb_crc_ct_chest.labels.json", "tcia_cmb_crc_ct_chest.nii.gz"]
    labels = np.asarray(nib.load(str(outdir / "tcia_cmb_crc_ct_chest.nii.gz")).dataobj)
    assert not np.delete(labels, 60, axis=2).any()


@pytest.mark.slow
def test_the_real_ct_organ_model_on_the_chest_ct(tmp_path, chest_ct_dir):
    segs = [c for c in ModelRegistry().list() if c.task == "segmentation"
            and c.folder is not None and str(c.folder).startswith(str(REPO / "models"))]
    if not segs:
        pytest.fail("the built-in CT segmentation model is missing from models/")
    card = segs[-1]
    out = tmp_path / "organs.nii.gz"
    assert main(["predict", "--model", card.ref, str(chest_ct_dir), "--out", str(out)]) == 0
    img = nib.load(str(out))
    vol = open_first([chest_ct_dir])
    assert img.shape == (512, 512, 100)
    np.testing.assert_allclose(img.affine, vol.geometry.affine_ras(), atol=1e-4)
    assert np.asarray(img.dataobj).any()  # at least one organ found in a real chest CT


def _builtin_ct_model():
    segs = [c for c in ModelRegistry().list() if c.name == "ct-abdomen-organs"
            and c.folder is not None and str(c.folder).startswith(str(REPO / "models"))]
    if not segs:
        pytest.fail("the built-in CT segmentation model is missing from models/")
    return segs[-1]


def test_the_ct_model_refuses_a_radiograph_unless_forced(tmp_path, capsys):
    card = _builtin_ct_model()
    rg = pydicom.data.get_testdata_file("RG1_UNCI.dcm")
    out = tmp_path / "rg.nii.gz"
    assert main(["predict", "--model", card.ref, rg, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "refused" in ln]
    assert len(lines) == 1 and "CR" in lines[0] and "--force" in lines[0]
    assert not out.exists()
    assert main(["predict", "--model", card.ref, rg, "--out", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert "outside what the model was trained on" in err and "forced" in err
    side = json.loads((tmp_path / "rg.labels.json").read_text())
    assert side["forced"] is True and "CR" in side["domain_mismatch"]
    assert side["in_domain"] is False and side["ood_score"] > 10
    assert side["ood"]["components"]["features"] > 1


def test_the_ct_model_sidecar_carries_the_ood_score(tmp_path, shared_data, capsys):
    card = _builtin_ct_model()
    ct = shared_data / "totalseg/tests/reference_files/example_ct_sm.nii.gz"
    out = tmp_path / "abdomen.nii.gz"
    assert main(["predict", "--model", card.ref, str(ct), "--out", str(out),
                 "--slice", "18"]) == 0
    side = json.loads((tmp_path / "abdomen.labels.json").read_text())
    assert side["in_domain"] is True and 0 < side["ood_score"] <= side["ood"]["threshold"]
    assert side["forced"] is False and "domain_mismatch" not in side
