"""`medviewer info` / `convert` on damaged files, as subprocesses: one line per error, no
traceback (not even a Rust decoder's panic report, though RUST_BACKTRACE is set), valid JSON
(no NaN), and no patient name in any message."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "io"))
from fuzz_mutants import panicking_rle, with_value  # noqa: E402


def _run_cli(*args):
    env = {**os.environ, "RUST_BACKTRACE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "medviewer", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def test_info_and_convert_on_a_panicking_rle_file_print_one_line(tmp_path):
    bad = panicking_rle(tmp_path)
    rc, out, err = _run_cli("info", bad)
    assert rc == 1
    lines = [ln for ln in out.splitlines() if "NOT LOADED" in ln]
    assert len(lines) == 1 and "panic_rle.dcm" in lines[0] and "RLE Lossless" in lines[0]
    assert err.strip() == "", err  # no Python traceback, no Rust panic report
    rc, out, err = _run_cli("convert", bad, tmp_path / "out.nii.gz")
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("medviewer: error: cannot load series [0]:") and "panic_rle.dcm" in err
    assert not (tmp_path / "out.nii.gz").exists()


def test_info_json_on_damaged_geometry_is_valid_json(shared_data, tmp_path):
    chest = sorted((shared_data / "tcia_cmb_crc_ct_chest").glob("*.dcm"))[40:43]
    series = tmp_path / "series"
    series.mkdir()
    for f in chest:
        shutil.copy(f, series / f.name)
    with_value(chest[1], series / chest[1].name, "ImagePositionPatient", "nan\\0\\inf")
    single = with_value(chest[0], tmp_path / "spacing.dcm", "PixelSpacing", "nan\\3")
    single = with_value(single, single, "SpacingBetweenSlices", "nan")
    no_nan = {"parse_constant": lambda c: (_ for _ in ()).throw(ValueError(c))}
    rc, out, err = _run_cli("info", series, "--json")
    (rec,) = json.loads(out, **no_nan)["series"]
    assert rc == 1 and err.strip() == ""
    assert rec["error"].startswith(f"{chest[1].name}: ImagePositionPatient")
    rc, out, err = _run_cli("info", single, "--json")
    (rec,) = json.loads(out, **no_nan)["series"]
    assert rc == 0 and err.strip() == ""
    assert rec["error"] is None and rec["spacing_xyz"][:2] == [1.0, 1.0]
    assert any("Pixel spacing unknown" in w for w in rec["warnings"])
    rc, out, err = _run_cli("info", single)  # the human form
    assert rc == 0 and "spacing (x,y,z) mm: 1 1 " in out and "nan" not in out.lower()


def test_no_patient_name_in_load_errors(shared_data, tmp_path):
    src = sorted((shared_data / "tcia_cmb_crc_ct_chest").glob("*.dcm"))[0]
    ds = pydicom.dcmread(src)
    ds.PatientName = "Planted^Zebulon"
    ds.PatientID = "PID-778899"
    ds.RescaleSlope = "1"
    planted = tmp_path / "planted.dcm"
    ds.save_as(planted)
    bad = with_value(planted, tmp_path / "planted.dcm", "RescaleSlope", "1e308")
    rc, out, err = _run_cli("info", bad)
    assert rc == 1 and "out of range" in out
    for secret in ("Zebulon", "Planted", "PID-778899"):
        assert secret not in out and secret not in err
