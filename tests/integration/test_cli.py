"""`medviewer info` and `medviewer convert` on real data; convert is checked against dcm2niix."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medviewer.cli import main
from medviewer.io.demo import demo_paths
from medviewer.io.load import open_first

REPO = Path(__file__).resolve().parents[2]
DCM2NIIX = shutil.which("dcm2niix")


def _run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "medviewer", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_info_json_on_the_chest_ct_as_a_subprocess(chest_ct_dir):
    rc, out, err = _run_cli("info", chest_ct_dir, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert len(doc["series"]) == 1
    s = doc["series"][0]
    assert s["modality"] == "CT" and s["shape_zyx"] == [100, 512, 512]
    assert s["spacing_xyz"] == pytest.approx([0.898438, 0.898438, 2.5], abs=1e-5)
    assert s["orientation"] == "LPS" and s["error"] is None and s["units"] == "HU"
    assert [k["reason"] for k in doc["skipped"]] == ["not a DICOM or volume file"]  # PROVENANCE.tsv


def test_info_human_lists_series_warnings_skipped_but_no_patient(shared_data, capsys):
    uneven = shared_data / "monai_testing_data/tests/testing_data/CT_DICOM"
    assert main(["info", str(uneven), str(shared_data / "dcm_qa_enh")]) == 0
    out = capsys.readouterr().out
    assert "shape (z,y,x): 4 x 16 x 16" in out and "uneven slice offsets mm: 0 202.5 203.75 205" in out
    assert "Uneven slice spacing" in out and "4D series" in out
    assert "README.md: not a DICOM or volume file" in out
    # the MONAI CT's PatientName is MONAI^MONAI and PatientID 77654033: never printed
    assert main(["info", str(uneven), "--json"]) == 0
    out += capsys.readouterr().out
    assert "MONAI^MONAI" not in out and "77654033" not in out


def test_info_non_image_objects_and_exit_codes(shared_data, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no images here")
    assert main(["info", str(tmp_path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["series"] == [] and doc["skipped"][0]["path"].endswith("notes.txt")
    seg = shared_data / "dcmqi_seg_examples/data/segmentations/liver.dcm"
    assert main(["info", str(seg), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["series"] == [] and doc["non_image"][0]["modality"] == "SEG"
    assert main(["info"]) == 2 and main(["convert", "only-one-arg"]) == 2 and main([]) == 2


def test_convert_refusals(shared_data, tmp_path, capsys):
    uneven = shared_data / "monai_testing_data/tests/testing_data/CT_DICOM"
    assert main(["convert", str(uneven), str(tmp_path / "u.nii.gz")]) == 1
    assert "uneven slice spacing (1.25-202.5 mm steps)" in capsys.readouterr().err
    assert main(["convert", str(tmp_path), str(tmp_path / "x.nii.gz")]) == 1
    assert "no image series found" in capsys.readouterr().err
    both = shared_data / "dcm_qa_toshiba_oblique/In/Galan"
    assert main(["convert", str(both), str(tmp_path / "x.nii.gz"), "--series", "1.2.392"]) == 1
    assert "matches several series" in capsys.readouterr().err
    assert main(["convert", str(both), str(tmp_path / "x.nrrd")]) == 1
    assert main(["convert", str(both), str(tmp_path / "x.nii"), "--slice-spacing", "2"]) == 1
    assert not list(tmp_path.glob("*.nii*"))
    assert main(["convert", str(both), str(tmp_path / "x.nii"), "--series", "1"]) == 0
    assert "DTI AX 30d" in capsys.readouterr().out


# (folder, dcm2niix options, dcm2niix output to compare, our extra options, why)
CASES = {
    "chest_ct": ("tcia_cmb_crc_ct_chest", [], "out.nii.gz", [], ""),
    "totalseg_j2k_blank_uid": ("totalseg/tests/reference_files/example_ct_dicom", [], "out.nii.gz",
                               [], ""),
    "toshiba_oblique_all_20d": ("dcm_qa_toshiba_oblique/In/Galan/10006_DTI_ALL_20d", [],
                                "out.nii.gz", [], ""),
    "toshiba_oblique_ax_30d": ("dcm_qa_toshiba_oblique/In/Galan/8006_DTI_AX_30d", [],
                               "out.nii.gz", [], ""),
    # Philips enhanced MR holds a magnitude and a field map at the same positions; we show the
    # first (magnitude, dcm2niix's _e1). dcm2niix's default Philips "precise float" scaling
    # divides by a private scale slope; -p n makes it use the DICOM rescale, as we do.
    "philips_enhanced": ("dcm_qa_enh/In/Philips", ["-p", "n"], "out_e1.nii.gz", [], ""),
    # Siemens XA10 enhanced: 4 time points; dcm2niix writes 4D, we show the first volume.
    "siemens_xa10_4d_first_volume": ("dcm_qa_enh/In/Siemens/XA10", [], "out.nii.gz", [], ""),
    # Uneven CT: dcm2niix writes an equalised copy (_Eq_1); we resample on request to the same
    # slice spacing (read from its header) and must get the same linear interpolation.
    "monai_uneven_resampled": ("monai_testing_data/tests/testing_data/CT_DICOM", [],
                               "out_Eq_1.nii.gz", ["--resample"], ""),
}


@pytest.mark.skipif(DCM2NIIX is None and not os.environ.get("CI"),
                    reason="dcm2niix is not installed (packaging/install.sh --test installs it)")
@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_convert_matches_dcm2niix(shared_data, tmp_path, case):
    assert DCM2NIIX, "CI must have dcm2niix: packaging/install.sh --test installs it"
    rel, d2n_opts, d2n_name, ours_opts, _ = CASES[case]
    src = shared_data / rel
    ref_dir = tmp_path / "dcm2niix"
    ref_dir.mkdir()
    proc = subprocess.run([DCM2NIIX, *d2n_opts, "-z", "y", "-b", "n", "-f", "out", "-o",
                           str(ref_dir), str(src)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ref_img = nib.load(ref_dir / d2n_name)
    if "--resample" in ours_opts:
        ours_opts = ours_opts + ["--slice-spacing", repr(float(ref_img.header.get_zooms()[2]))]
    ours_path = tmp_path / "ours.nii.gz"
    assert main(["convert", str(src), str(ours_path), *ours_opts]) == 0
    ref = nib.as_closest_canonical(ref_img)
    ours = nib.as_closest_canonical(nib.load(ours_path))
    ref_data = ref.get_fdata()
    if ref_data.ndim == 4:
        ref_data = ref_data[..., 0]
    ours_data = ours.get_fdata()
    assert ours_data.shape == ref_data.shape
    scale = max(1.0, float(np.abs(ref_data).max()))
    np.testing.assert_allclose(ours_data, ref_data, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)


def test_demo_paths_exist_and_load(shared_data):
    paths = demo_paths()
    assert paths[0].name == "RG1_UNCI.dcm"
    assert (shared_data / "tcia_cmb_crc_ct_chest").resolve() in [Path(p).resolve() for p in paths]
    assert all(Path(p).exists() for p in paths)
    radiograph = open_first([paths[0]])
    assert radiograph.invert and radiograph.shape[0] == 1  # MONOCHROME1 projection image
    vol = open_first([paths[-1]])
    assert vol.shape[0] > 1 and vol.array.ndim == 3


def test_info_into_a_closed_pipe_exits_quietly(shared_data):
    """`medviewer info ... | head` must not end in a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "medviewer", "info", "--json",
                             str(shared_data / "dcm_qa_toshiba_oblique")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(5)
    proc.stdout.close()  # the reader goes away, as `head` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err
