"""Fine-tunes started together and fine-tunes killed: real trainer processes (``python -m
medviewer.ai.training``, one epoch on 16 shifted PneumoniaMNIST images) on the built-in
pneumonia-cxr-smallcnn, versions written to a temporary user models folder.

- Two runs that both started before either committed (both expect 1.1.0) both train and both
  commit, as 1.1.0 and 1.2.0; each card, README and gate report names the version it got; only
  the first is promoted, since the second was judged against a version no longer active.
- A run killed with SIGKILL leaves its staging folder; the next run's start removes it, while a
  live (here stopped) run's staging folder is left alone."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.ai import versions
from medviewer.ai.registry import ModelRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "ai"))
from _training_manifests import REPO, cls_workspace  # noqa: E402

pytestmark = pytest.mark.slow  # training child processes

NAME = "pneumonia-cxr-smallcnn"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return cls_workspace(tmp_path_factory.mktemp("ws"), 16, 10, model=NAME)


def _start(manifest: Path, models: Path, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "medviewer.ai.training", "--manifest", str(manifest),
            "--base", f"{NAME}:1.0.0", "--models-dir", str(models), "--epochs", "1",
            "--threads", "1", "--no-augment", "--margin", "1", "--min-val-units", "1",
            "--min-val-per-class", "0"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    with open(log, "w") as err:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                cwd=REPO)


def _read_until(proc: subprocess.Popen, kind: str) -> dict:
    """The trainer's events up to the first of ``kind`` (its staging folder exists by "start")."""
    for line in proc.stdout:
        if line.startswith("{") and json.loads(line).get("event") == kind:
            return json.loads(line)
    raise AssertionError(f"the trainer ended (code {proc.wait()}) before a {kind!r} event")


def _finish(proc: subprocess.Popen, log: Path) -> dict:
    """The "done" event of a run, once it exited 0."""
    rest = proc.stdout.read()
    assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    events = [json.loads(x) for x in rest.splitlines() if x.startswith("{")]
    assert events and events[-1]["event"] == "done", (events[-1:], log.read_text()[-3000:])
    return events[-1]


def _staging(models: Path) -> list[Path]:
    folder = models / NAME
    return sorted(p for p in folder.iterdir() if p.name.startswith(versions.STAGING_PREFIX))


def _owner_pid(staging: Path) -> int:
    return json.loads((staging / ".owner").read_text())["pid"]


def test_two_finetunes_started_together_commit_as_two_versions(manifest, tmp_path):
    models = tmp_path / "models"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = _start(manifest, models, logs[0])
    b = None
    try:
        start_a = _read_until(a, "start")
        os.kill(a.pid, signal.SIGSTOP)  # a holds its staging folder until b has started too
        try:
            b = _start(manifest, models, logs[1])
            start_b = _read_until(b, "start")
        finally:
            os.kill(a.pid, signal.SIGCONT)
        # both expected the same next version: taking it at the start would collide
        assert start_a["candidate"] == start_b["candidate"] == f"{NAME}:1.1.0"
        staged = _staging(models)
        assert len(staged) == 2 and not any("1.1.0" in p.name for p in staged)
        done = [_finish(a, logs[0]), _finish(b, logs[1])]
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sorted(d["version"] for d in done) == ["1.1.0", "1.2.0"]
    for d in done:
        folder = Path(d["folder"])
        assert folder == models / NAME / d["version"]
        card = json.loads((folder / "model.json").read_text())
        assert card["version"] == d["version"] and card["parent_version"] == "1.0.0"
        assert (folder / "README.md").read_text().startswith(f"# {NAME} {d['version']} ")
        # judged against the version active when its gate ran: 1.0.0, or the other run's
        # version when that one had already committed (the two runs race after their start)
        judged = re.search(r"candidate (\S+) vs active (\S+)", (folder / "report.md").read_text())
        assert judged and judged.group(1) == d["version"]
        d["judged"] = judged.group(2)
        assert d["judged"] in ("1.0.0", "1.1.0") and d["judged"] != d["version"]
        report = json.loads((folder / "report.json").read_text())
        assert json.dumps(report).count(f'"version": "{d["version"]}"') >= 1
        assert sorted(p.name for p in folder.iterdir()) == [
            "README.md", "model.json", "report.json", "report.md", "report.png",
            "weights.safetensors"]
    assert _staging(models) == []
    reg = ModelRegistry(user_dir=models)
    assert [c.version for c in reg.list() if c.name == NAME] == ["1.0.0", "1.1.0", "1.2.0"]
    for d in done:
        reg.get(f"{NAME}:{d['version']}").verify()
    first, second = sorted(done, key=lambda d: d["version"])
    assert first["judged"] == "1.0.0" and first["promoted"] is True
    if second["judged"] == "1.0.0":
        # both judged against 1.0.0: the first to commit became active, and the other is not
        # promoted over a version it was never compared with
        assert second["promoted"] is False
        assert "became active meanwhile" in second["not_promoted"]
    else:  # judged against the first, already active: promoted exactly when it beat it
        passed = json.loads((Path(second["folder"]) / "report.json").read_text())["passed"]
        assert second["promoted"] is bool(passed)
    expected = second["version"] if second["promoted"] else first["version"]
    assert versions.active_version(reg, NAME) == expected


def test_a_killed_finetunes_staging_is_removed_at_the_next_start_a_live_ones_is_not(
        manifest, tmp_path):
    models = tmp_path / "models"
    live = _start(manifest, models, tmp_path / "live.log")
    try:
        _read_until(live, "start")
        os.kill(live.pid, signal.SIGSTOP)  # alive, mid-run: its staging folder must stay
        killed = _start(manifest, models, tmp_path / "killed.log")
        try:
            _read_until(killed, "start")
        finally:
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait(timeout=60)
        assert killed.returncode == -signal.SIGKILL
        staged = {_owner_pid(p): p for p in _staging(models)}
        assert sorted(staged) == sorted([live.pid, killed.pid])  # nothing sweeps meanwhile
        log = tmp_path / "next.log"
        nxt = _start(manifest, models, log)
        done = _finish(nxt, log)
        assert not staged[killed.pid].exists()  # removed at the next start: its owner is gone
        assert _staging(models) == [staged[live.pid]]  # the live run's is untouched
        assert done["version"] == "1.1.0" and Path(done["folder"]).is_dir()
    finally:
        os.kill(live.pid, signal.SIGKILL)
        live.wait(timeout=60)
