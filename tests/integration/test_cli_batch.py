"""`medviewer predict --batch` on real data: resumable, one line per study, a run killed by
SIGKILL resumes without redoing finished studies, and two torchrun processes share the work
with every study done exactly once."""
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviewer.cli import main

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("user_models")  # an empty $MEDVIEWER_MODELS per test


def _lines(out: Path) -> list:
    return [json.loads(x) for x in (out / "summary.jsonl").read_text().splitlines() if x]


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


@pytest.fixture
def archive(shared_data, tmp_path):
    """Three real PneumoniaMNIST radiographs, a broken PNG, a text file, and a CT volume."""
    data = np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz")
    folder = tmp_path / "archive" / "xrays"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(data["test_images"][i]).save(folder / f"case{i}.png")
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    (folder / "notes.txt").write_text("not an image")
    ct = shared_data / "totalseg/tests/reference_files/example_ct_sm.nii.gz"
    return folder, ct


@pytest.mark.slow  # eight runs of the CLI
def test_batch_classification_resumes_redoes_and_reports(archive, tmp_path, capsys):
    xrays, ct = archive
    out = tmp_path / "out"
    args = ["predict", "--batch", "--model", "pneumonia-cxr", str(xrays), str(ct),
            "--out", str(out)]
    assert main(args) == 1  # the broken PNG failed; the rest went on
    err = capsys.readouterr().err
    recs = _lines(out)
    by_name = {Path(r["path"]).name: r for r in recs}
    assert len(recs) == len(by_name) == 5  # one line per study; the text file is no study
    assert collections.Counter(r["status"] for r in recs) == {"ok": 3, "refused": 1, "failed": 1}
    assert by_name["case0.png"]["path"].endswith("archive/xrays/case0.png")  # relative
    assert not by_name["case0.png"]["path"].startswith("/")
    assert "failed " in err and "broken.png" in err and "1 files passed over" in err
    assert "CT" in by_name["example_ct_sm.nii.gz"]["error"]
    for i in range(3):
        r = by_name[f"case{i}.png"]
        assert r["model"] == "pneumonia-cxr:1.0.0" and r["model_version"] == "1.0.0"
        assert r["class"] in ("normal", "pneumonia") and r["ood_score"] > 0
        assert isinstance(r["in_domain"], bool) and r["forced"] is False
        assert set(r["timings"]) == {"load_s", "predict_s", "write_s", "total_s"}
        (output,) = r["outputs"]
        doc = json.loads((out / output).read_text())
        assert doc["class"] == r["class"] and doc["study_id"] == r["study_id"]
    assert json.loads((out / "batch.json").read_text())["model"] == "pneumonia-cxr:1.0.0"

    first = (out / "summary.jsonl").read_bytes()
    assert main(args) == 1  # a rerun retries the failed study only
    assert "4 done before" in capsys.readouterr().err
    again = (out / "summary.jsonl").read_bytes()
    assert again.startswith(first)
    assert [Path(r["path"]).name for r in _lines(out)[5:]] == ["broken.png"]
    assert main(args + ["--skip-failed"]) == 1  # nothing to do, still one failure
    assert (out / "summary.jsonl").read_bytes() == again

    # an output that went missing: that study is redone, and only it
    (out / by_name["case1.png"]["outputs"][0]).unlink()
    (xrays / "broken.png").unlink()
    assert main(args) == 0  # every study is ok or refused now
    assert [Path(r["path"]).name for r in _lines(out)[6:]] == ["case1.png"]
    # --redo: every study once more, under one new run id
    assert main(args + ["--redo"]) == 0
    redo = _lines(out)[7:]
    assert len(redo) == 4 and len({r["run"] for r in redo}) == 1
    assert {Path(r["path"]).name for r in redo} == set(by_name) - {"broken.png"}
    capsys.readouterr()
    # only the CT, from a list file: every study refused
    assert main(["predict", "--list", str(_list(tmp_path, [ct])), "--model", "pneumonia-cxr",
                 "--out", str(tmp_path / "out2")]) == 3


def test_batch_usage_errors(archive, tmp_path, capsys, monkeypatch):
    xrays, ct = archive
    out = tmp_path / "out"
    out.mkdir()
    (out / "batch.json").write_text(json.dumps(
        {"format": 1, "model": "pneumonia-cxr:1.0.0", "task": "classification", "slice": None,
         "force": False}))
    # other settings into a folder that holds results: refused, nothing written
    assert main(["predict", "--batch", "--model", "pneumonia-cxr", str(xrays), "--out", str(out),
                 "--slice", "0"]) == 2
    assert "holds results of pneumonia-cxr:1.0.0" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["batch.json"]
    assert main(["predict", "--batch", "--model", "pneumonia-cxr", str(ct), "--out", "-"]) == 2
    assert "writes into a folder" in capsys.readouterr().err
    assert main(["predict", "--list", str(tmp_path / "nope.txt"), "--model", "pneumonia-cxr",
                 "--out", str(tmp_path / "o")]) == 2
    assert "cannot read the list" in capsys.readouterr().err
    assert main(["predict", "--batch", "--model", "no-such-model", str(ct), "--out",
                 str(tmp_path / "o")]) == 2
    assert main(["predict", "--batch", "--threads", "0", "--model", "pneumonia-cxr", str(ct),
                 "--out", str(tmp_path / "o")]) == 2
    assert "--threads 0" in capsys.readouterr().err
    assert main(["predict", "--redo", "--model", "pneumonia-cxr", str(ct), "--out", "-"]) == 2
    assert "go with --batch" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["predict", "--model", "pneumonia-cxr", str(ct), "--out", "-"]) == 2
    assert "give --batch" in capsys.readouterr().err


def test_a_model_that_cannot_load_stops_the_batch(archive, tmp_path, user_models, capsys):
    xrays, _ = archive
    src = REPO / "models/pneumonia-cxr/1.0.0"
    bad = user_models / "pneumonia-cxr/9.0.0"
    bad.mkdir(parents=True)
    for name in ("model.json", "weights.safetensors", "ood_reference.safetensors", "README.md"):
        shutil.copy(src / name, bad / name)
    card = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**card, "version": "9.0.0"}))
    data = bytearray((bad / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF  # weights that no longer match the card's hash
    (bad / "weights.safetensors").write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["predict", "--batch", "--model", "pneumonia-cxr:9.0.0", str(xrays),
                 "--out", str(out)]) == 2  # not one 'failed' line per study
    err = capsys.readouterr().err
    assert "cannot load pneumonia-cxr:9.0.0" in err and "sha256" in err
    assert not (out / "summary.jsonl").exists()


def _list(tmp_path: Path, paths) -> Path:
    lst = tmp_path / "studies.txt"
    lst.write_text("".join(f"{p}\n" for p in paths))
    return lst


def _ct_studies(shared_data) -> list:
    ref = shared_data / "totalseg/tests/reference_files"
    return [ref / "example_ct_dicom", ref / "example_ct.nii.gz", ref / "example_ct_sm.nii.gz",
            ref / "example_mr_sm.nii.gz", ref / "aorta_report/test_result/models/ct_cropped.nii.gz",
            ref / "aorta_report/test_result/models/aorta.nii.gz",
            ref / "pulmonary_report/models/heart.nii.gz",
            ref / "pulmonary_report/models/pulmonary_artery.nii.gz"]


@pytest.mark.slow
def test_a_batch_killed_midway_resumes_without_redoing_finished_studies(shared_data, tmp_path):
    studies = _ct_studies(shared_data)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medviewer.cli", "predict", "--model", "ct-abdomen-organs",
           "--list", str(_list(tmp_path, studies + [tmp_path / "gone"])), "--slice", "0",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            summary = out / "summary.jsonl"
            if summary.is_file() and any(r["status"] == "ok" for r in _lines(out)):
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    before = (out / "summary.jsonl").read_bytes()
    done = {r["study_id"]: r for r in _lines(out) if r["status"] == "ok"}
    assert 1 <= len(done) < len(studies)  # killed midway
    mtimes = {p: (out / p).stat().st_mtime_ns for r in done.values() for p in r["outputs"]}

    rerun = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 1, rerun.stderr[-3000:]  # the missing study fails, once more
    assert (out / "summary.jsonl").read_bytes().startswith(before)
    recs = _lines(out)
    ok = collections.Counter(r["study_id"] for r in recs if r["status"] == "ok")
    assert len(ok) == len(studies) and set(ok.values()) == {1}  # all done, each once
    assert {p: (out / p).stat().st_mtime_ns for p in mtimes} == mtimes  # not rewritten
    new = recs[len(before.splitlines()):]  # the rerun's lines
    assert {r["study_id"] for r in new if r["status"] == "ok"} == set(ok) - set(done)
    assert [Path(r["path"]).name for r in new if r["status"] == "failed"] == ["gone"]
    left = [p.name for p in (out / "outputs").iterdir() if p.name.startswith(".")]
    assert left == []  # no half-written output left behind
    assert len(list((out / "outputs").glob("*.nii.gz"))) == len(studies)


@pytest.mark.slow
def test_two_torchrun_processes_do_every_study_exactly_once(shared_data, tmp_path):
    ref = shared_data / "totalseg/tests/reference_files"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
           "--nproc_per_node=2", "-m", "medviewer.cli", "predict", "--batch", "--model",
           "ct-abdomen-organs", str(ref), "--slice", "0", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = _lines(out)
    per_study = collections.Counter(r["study_id"] for r in recs)
    assert len(per_study) == 24 and set(per_study.values()) == {1}  # every study, once
    assert {r["status"] for r in recs} == {"ok"}
    assert len({r["run"] for r in recs}) == 1  # torchrun's rendezvous id, shared
    assert "24 ok, 0 refused, 0 failed" in proc.stderr
    # both processes walked the list; what each ran is what the summary says it ran (how
    # many each took depends on their speed: a fast process takes more)
    n1 = int(re.search(r"\[rank 1/2\] (\d+) studies run by this process", proc.stderr)[1])
    n0 = int(re.search(r"(\d+) run by rank 0", proc.stderr)[1])
    by_rank = collections.Counter(r["rank"] for r in recs)
    assert (n0, n1) == (by_rank[0], by_rank[1]) and n0 + n1 == 24
    outputs = [p for r in recs for p in r["outputs"]]
    assert len(set(outputs)) == 48 and all((out / p).is_file() for p in outputs)


@pytest.mark.slow
def test_sigterm_stops_a_batch_cleanly_and_it_resumes(archive, tmp_path):
    xrays, _ = archive
    (xrays / "broken.png").unlink()
    for i in range(3, 12):  # more radiographs: the run is still going when it is stopped
        (xrays / f"case{i}.png").write_bytes((xrays / "case0.png").read_bytes())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medviewer.cli", "predict", "--batch", "--model",
           "pneumonia-cxr", str(xrays), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "summary.jsonl").is_file() and _lines(out):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    done = len(_lines(out))
    assert 1 <= done < 12
    assert not [p for p in (out / "outputs").iterdir() if p.name.startswith(".")]
    rerun = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0 and f"{done} done before" in rerun.stderr
    assert len(_lines(out)) == 12
