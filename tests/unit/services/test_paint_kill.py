"""SIGKILL a process that paints strokes through the app's PaintSession (while a second
thread saves at random moments) at random instants; after each kill, what the app recovers
holds every FINISHED stroke and nothing of an unfinished or cancelled one, and the saved
records form one linear chain that the recovered labels continue.

A few kills in the fast tier; ``MEDVIEWER_KILLS`` (default 50) under ``slow``. The counts are
printed as one JSON line (``-s`` shows it)."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _paint_data import REPO, load_ct, reference, stroke_plan
from medviewer.services.annotations import check_on_open
from medviewer.services.painting import PaintSession
from medviewer.services.workspace import Workspace
from medviewer.storage.store import LabelStore

CHILD = Path(__file__).resolve().parent / "_paint_child.py"
N_STROKES = 200  # as the painter plans them (_paint_child.N_STROKES)


@pytest.fixture(scope="module")
def ct():
    return load_ct()


class ForkServer:
    """_paint_child.py: imports the app and loads the CT once, forks one painter per trial."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, str(CHILD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=str(REPO))
        self._expect("SERVER")

    def _expect(self, start: str) -> str:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"fork server ended: {self.proc.stderr.read()[-2000:]}")
            if line.startswith(start):
                return line

    def run_and_kill(self, folder: Path, seed: int, after_ends: int, extra_s: float) -> str:
        """Paint in ``folder``; SIGKILL the painter once it said ``END after_ends`` (plus
        ``extra_s`` seconds: the kill lands anywhere in a stroke, a journal write or a save
        of the thread that saves). Returns everything the painter printed."""
        self.proc.stdin.write(f"{folder} {seed}\n")
        self.proc.stdin.flush()
        lines = [self._expect("READY ")]
        pid = int(lines[0].split()[1])
        ends = 0
        while ends < after_ends:
            line = self.proc.stdout.readline()
            lines.append(line)
            ends += line.startswith("END ")
            assert line and not line.startswith(("DONE", "REAPED")), lines[-5:]
        time.sleep(extra_s)
        os.kill(pid, signal.SIGKILL)
        while not lines[-1].startswith("REAPED"):
            lines.append(self.proc.stdout.readline())
        assert lines[-1].split() == ["REAPED", str(-signal.SIGKILL)], lines[-3:]
        return "".join(lines[:-1])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _judge(ct, plan, folder: Path, out: str) -> dict:
    ended = {int(i) for i in re.findall(r"^END (\d+)$", out, flags=re.M)}
    cancelled = {int(i) for i in re.findall(r"^CANCEL (\d+)$", out, flags=re.M)}
    begun = {int(i) for i in re.findall(r"^BEGIN (\d+)$", out, flags=re.M)}
    open_ = sorted(begun - ended - cancelled)
    assert len(open_) <= 1 and "DONE" not in out, out[-300:]
    flying = open_[0] if open_ else None
    res = check_on_open(ct, folder)
    ps = PaintSession(Workspace(folder=folder), res.image_hash)
    ps.restore(res, ct.geometry)
    got = ps.labelmap.labels
    finished = set(ended)
    if flying is not None and not plan[flying][1]:  # it may have ended before END was said
        with_it = reference(ct.shape, plan, ended | {flying})
        if np.array_equal(got, with_it):
            finished.add(flying)
    want = reference(ct.shape, plan, finished)
    # count what differs: finished strokes missing, unfinished/cancelled ones (partly) back
    owner = np.full(got.size, -1, np.int64)
    for i in sorted(finished):
        owner[np.unique(np.concatenate(plan[i][2]))] = i
    flat, wflat = got.reshape(-1), want.reshape(-1)
    lost = sum(1 for i in finished if np.any(flat[owner == i] != plan[i][0]))
    back = 0
    for j in sorted(cancelled | ({flying} - finished - {None})):
        idx = np.unique(np.concatenate(plan[j][2]))
        idx = idx[wflat[idx] != plan[j][0]]
        back += int(idx.size > 0 and np.any(flat[idx] == plan[j][0]))
    # the saved records: one linear chain, and the recovered labels continue its head
    recs = []
    if (folder / "labels.db").exists():
        with LabelStore(folder, read_only=True) as store:
            recs = store.records(res.image_hash, kind="labelmap")
    chain_ok = [r.parent_id for r in recs] == ([None] + [r.id for r in recs])[:len(recs)] and \
        res.base_record_id == (recs[-1].id if recs else None)
    why = None if chain_ok else {
        "parents": [(r.id[:6], (r.parent_id or "-")[:6], (r.payload.get("extra") or {}))
                    for r in recs],
        "base": (res.base_record_id or "-")[:6],
        "journals": [(j.path.stem, (j.base_record_id or "-")[:6], len(j.edits), j.created_at)
                     for j in res.journals]}
    return {"finished": len(finished), "lost": lost, "resurrected": back,
            "equal": bool(np.array_equal(got, want)), "mid_stroke": flying is not None,
            "records": len(recs), "chain_ok": chain_ok, "why": why}


def _trials(ct, tmp_path, kills: int, seed0: int) -> dict:
    rng = random.Random(seed0)
    total = {"kills": 0, "finished_strokes": 0, "finished_lost": 0, "partial_resurrected": 0,
             "killed_mid_stroke": 0, "records": 0, "broken_chains": 0, "wrong_labels": 0}
    server = ForkServer()
    try:
        for t in range(kills):
            seed = seed0 + t
            folder = tmp_path / f"ws{t}"
            out = server.run_and_kill(folder, seed, rng.randint(1, 60), rng.uniform(0, 0.03))
            r = _judge(ct, stroke_plan(ct.geometry, N_STROKES, seed), folder, out)
            total["kills"] += 1
            total["finished_strokes"] += r["finished"]
            total["finished_lost"] += r["lost"]
            total["partial_resurrected"] += r["resurrected"]
            total["killed_mid_stroke"] += int(r["mid_stroke"])
            total["records"] += r["records"]
            total["broken_chains"] += int(not r["chain_ok"])
            if r["why"] is not None:
                print("BROKEN", t, json.dumps(r["why"]))
            total["wrong_labels"] += int(not r["equal"])
    finally:
        server.close()
    print("KILLS " + json.dumps(total))
    return total


def _check(total: dict, kills: int) -> None:
    assert total["kills"] == kills
    assert total["finished_strokes"] > 0 and total["records"] > 0  # it painted and saved
    assert total["finished_lost"] == 0, total
    assert total["partial_resurrected"] == 0, total
    assert total["wrong_labels"] == 0 and total["broken_chains"] == 0, total


def test_a_few_kills_lose_no_finished_stroke_and_bring_back_no_partial_one(ct, tmp_path):
    _check(_trials(ct, tmp_path, 3, seed0=100), 3)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 50 kills take ~10 minutes on a busy 2-core machine
def test_many_kills_lose_no_finished_stroke_and_bring_back_no_partial_one(ct, tmp_path):
    kills = int(os.environ.get("MEDVIEWER_KILLS", "50"))
    _check(_trials(ct, tmp_path, kills, seed0=1000), kills)
