"""`medviewer findings IMAGE LABELS --out OUT` on TotalSegmentator's reference CT and labels:
the CSV holds every finding the service measures; bad input is one line and exit code 2."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from medviewer.io.load import open_first
from medviewer.services.findings import case_findings

REPO = Path(__file__).resolve().parents[2]
TS = "totalseg/tests/reference_files"


def _run_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "medviewer", "findings", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def test_findings_cli_writes_what_the_service_measures(shared_data, tmp_path):
    ct, seg = shared_data / TS / "example_ct_sm.nii.gz", shared_data / TS / "example_seg.nii.gz"
    rc, out, err = _run_cli(ct, seg, "--out", tmp_path / "f.csv", "--min-voxels", "2")
    assert rc == 0, err
    vol = open_first([ct])
    labels = np.asarray(open_first([seg]).array).astype(np.uint8)
    expected = case_findings(vol, labels, min_voxels=2)
    with open(tmp_path / "f.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["label"]), int(r["n_voxels"])) for r in rows] == \
        [(f.label, f.n_voxels) for f in expected]
    assert [float(r["long_axis_mm"]) for r in rows] == [f.long_mm for f in expected]
    assert len(out.splitlines()) == len(expected) and f"{len(expected)} findings" in err
    rc, out, err = _run_cli(ct, seg, "--out", tmp_path / "f.json", "--json", "--connectivity", "6")
    assert rc == 0 and json.loads(out)["findings"] >= len(case_findings(vol, labels))
    assert json.loads((tmp_path / "f.json").read_text())["connectivity"] == 6


def test_findings_cli_bad_input(shared_data, tmp_path):
    ct = shared_data / TS / "example_ct_sm.nii.gz"
    rc, _, err = _run_cli(ct, shared_data / TS / "example_seg.nii.gz", "--out", tmp_path / "f.txt")
    assert rc == 2 and ".csv, .json or .dcm" in err
    rc, _, err = _run_cli(ct, shared_data / TS / "example_seg.nii.gz", "--out", tmp_path / "f.dcm")
    assert rc == 2 and "not loaded from DICOM" in err and len(err.strip().splitlines()) == 1
    mask = shared_data / "nilearn_mni152/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"
    rc, _, err = _run_cli(ct, mask, "--out", tmp_path / "f.csv")
    assert rc == 2 and "--resample" in err, err
    assert not list(tmp_path.iterdir())
