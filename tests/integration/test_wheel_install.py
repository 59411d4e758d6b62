"""The wheel works without the checkout: build it, install it in a fresh venv, run the CLI there.

The wheel is built offline from a copy of the source (so no ``build/`` is left in the repo and
no stale ``build/lib`` files slip in), installed with ``--no-deps`` into a new venv that sees the
dependencies of the running interpreter through a ``.pth`` line (nothing is reinstalled). The
``.pth`` files *inside* a folder added that way are not executed, so the editable finder of the
running venv stays inactive: ``medviewer`` must come from the new venv, the built-in models and
label lists from the installed package data.
"""
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
CHEST_CT = DATA / "tcia_cmb_crc_ct_chest"
# what the wheel is built from; the rest of the checkout (tests, benchmarks, .git, venvs) is not
NOT_SOURCE = {".git", ".venv", "build", "dist", "tests", "benchmarks", ".pytest_cache"}


def _run(cmd, cwd, env, timeout=180):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, its site-packages, cwd outside the repo, env for the commands)."""
    if not CHEST_CT.is_dir():
        pytest.skip(f"the shared real data is not here ({CHEST_CT}); "
                    f"this test runs the installed CLI on it")
    try:  # an offline build uses the running environment's setuptools (--no-build-isolation)
        setuptools_major = int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        setuptools_major = 0
    if setuptools_major < 68:
        pytest.skip("setuptools>=68 is not installed here (pyproject.toml's build requirement); "
                    "the wheel is built offline with --no-build-isolation")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for entry in REPO.iterdir():
        if entry.name in NOT_SOURCE or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, src / entry.name, ignore=skip)
        else:
            shutil.copy2(entry, src / entry.name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", tmp / "wheels", src], cwd=tmp, env=os.environ.copy())
    (wheel,) = (tmp / "wheels").glob("medviewer-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=os.environ.copy())
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp, env=os.environ.copy()).stdout.strip())
    # the dependencies: the running interpreter's site-packages, appended after the venv's own
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_medviewer_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    _run([*pip, "--python", py, "install", "-q", "--no-deps", "--no-index", wheel],
         cwd=tmp, env=os.environ.copy())

    cwd = tmp / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "MEDVIEWER_SHARED_DATA")}
    env.update(QT_QPA_PLATFORM="offscreen", PYTHONNOUSERSITE="1",
               MEDVIEWER_MODELS=str(tmp / "user-models"),
               MEDVIEWER_SETTINGS_DIR=str(tmp / "settings"))
    return venv, site, cwd, env


def _medviewer(installed, *args, timeout=180):
    venv, _, cwd, env = installed
    return _run([venv / "bin" / "medviewer", *args], cwd=cwd, env=env, timeout=timeout)


def test_medviewer_comes_from_the_temp_venv_not_the_checkout(installed):
    venv, site, cwd, env = installed
    assert not cwd.resolve().is_relative_to(REPO)
    shebang = (venv / "bin" / "medviewer").read_text().splitlines()[0]
    assert shebang == f"#!{venv / 'bin' / 'python'}"
    probe = ("import json, sys, medviewer, numpy\n"
             "from medviewer.ai.registry import BUILTIN_DIR\n"
             "from medviewer.ui.annotation.label_panel import RESOURCES\n"
             "print(json.dumps({'medviewer': medviewer.__file__, 'numpy': numpy.__file__,\n"
             "  'builtin': str(BUILTIN_DIR), 'labels': str(RESOURCES),\n"
             "  'finders': [getattr(f, '__name__', type(f).__name__)\n"
             "              for f in sys.meta_path + sys.path_hooks],\n"
             "  'editable': [m for m in sys.modules if m.startswith('__editable__')]}))\n")
    doc = json.loads(_run([venv / "bin" / "python", "-c", probe], cwd=cwd, env=env).stdout)
    pkg = site / "medviewer"
    assert Path(doc["medviewer"]) == pkg / "__init__.py"
    assert not Path(doc["medviewer"]).resolve().is_relative_to(REPO)
    # the main venv's editable finder (its __editable__*.pth) did not run; deps come from there
    assert doc["editable"] == [] and not any("Editable" in f for f in doc["finders"])
    assert not Path(doc["numpy"]).is_relative_to(venv)
    assert Path(doc["builtin"]) == pkg / "builtin_models"
    assert Path(doc["labels"]) == pkg / "resources" / "labels"
    assert sorted(p.name for p in Path(doc["labels"]).glob("*.csv")) == \
        sorted(p.name for p in (REPO / "resources" / "labels").glob("*.csv"))
    assert (pkg / "resources" / "medviewer.svg").is_file()


def test_models_json_lists_the_builtin_models_inside_the_package(installed):
    _, site, _, _ = installed
    doc = json.loads(_medviewer(installed, "models", "--json").stdout)
    builtin = site / "medviewer" / "builtin_models"
    assert Path(doc["builtin_dir"]) == builtin
    expected = {(p.parent.parent.name, p.parent.name)
                for p in (REPO / "models").glob("*/*/model.json")}
    assert len(expected) >= 2
    assert {(m["name"], m["version"]) for m in doc["models"]} == expected
    for m in doc["models"]:
        assert m["source"] == "built-in"
        assert Path(m["folder"]) == builtin / m["name"] / m["version"]
    assert doc["refused"] == []


def test_info_on_the_real_chest_ct(installed):
    doc = json.loads(_medviewer(installed, "info", CHEST_CT, "--json").stdout)
    (s,) = doc["series"]
    assert s["modality"] == "CT" and s["shape_zyx"] == [100, 512, 512] and s["error"] is None


def test_predict_segments_one_ct_slice_with_a_builtin_model(installed):
    _, _, cwd, _ = installed
    proc = _medviewer(installed, "predict", "--model", "ct-abdomen-organs", "--slice", "60",
                      CHEST_CT, "--out", "seg.nii.gz")
    assert "wrote seg.nii.gz" in proc.stdout
    labels = np.asarray(nib.load(cwd / "seg.nii.gz").dataobj)
    side = json.loads((cwd / "seg.labels.json").read_text())
    assert side["model"].startswith("ct-abdomen-organs:") and side["slices"] == [60, 61]
    assert labels.shape == (512, 512, 100)
    found = set(np.unique(labels[..., 60]).tolist()) - {0}
    assert found and found <= {lab["value"] for lab in side["labels"]}
    assert np.count_nonzero(labels[..., 60]) > 1000 and np.count_nonzero(labels[..., 59]) == 0


def test_predict_classifies_a_real_radiograph(installed):
    from pydicom.data import get_testdata_file

    rg = get_testdata_file("RG1_UNCI.dcm", download=False)  # pydicom-data: a chest radiograph
    if not rg:
        pytest.skip("pydicom-data's RG1_UNCI.dcm is not installed")
    proc = _medviewer(installed, "predict", "--model", "pneumonia-cxr", rg, "--out", "-")
    (rec,) = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    probs = rec["probabilities"]
    assert set(probs) == {"normal", "pneumonia"}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert rec["class"] == max(probs, key=probs.get) and rec["model"].startswith("pneumonia-cxr:")
