"""The app's inference process (services.ai_process): a segmentation run there equals the same
run on this thread, cancels, survives a killed child, keeps error types, and leaves neither
torch in the calling interpreter nor scratch files behind. Real chest CT, real trunk model."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.registry import ModelRegistry
from medviewer.jobs import Cancelled, CancelToken, Reporter
from medviewer.services.ai_process import InferenceProcess, InferenceProcessError
from medviewer.services.ai_runs import InferenceContext, ModelLane, segment_volume
from medviewer.services.model_fit import DomainMismatch

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow  # a child process imports torch (~3-10 s once per module)


@pytest.fixture(scope="module")
def chest(chest_ct_dir):
    from medviewer.io.load import open_first

    return open_first([chest_ct_dir])


@pytest.fixture(scope="module")
def card():
    return ModelRegistry().get("ct-trunk-organs")


@pytest.fixture(scope="module")
def proc():
    p = InferenceProcess()
    yield p
    p.close()


def _scratch(pid: int) -> list:
    shm = Path("/dev/shm")
    return sorted(f.name for f in shm.glob(f"medviewer-ai-{pid}-*")) if shm.is_dir() else []


def _ctx(lane, progress=None, token=None):
    return InferenceContext(lane, Reporter(progress, token))


def test_a_slice_in_the_process_equals_the_same_run_on_this_thread(proc, chest, card):
    devices, steps = [], []
    lane = ModelLane(process=proc, on_device=lambda d, label: devices.append((d, label)))
    there = segment_volume(_ctx(lane, steps.append), card, chest, z=50)
    here = segment_volume(_ctx(ModelLane()), card, chest, z=50)
    assert proc.pid is not None and proc.pid != os.getpid() and proc.alive
    np.testing.assert_array_equal(there.labels, here.labels)
    assert there.labels.shape == chest.shape and there.labels.any()  # organs on slice 50
    assert not there.labels[:50].any() and not there.labels[51:].any()
    np.testing.assert_array_equal(there.entropy, here.entropy)
    assert there.uncertainty == pytest.approx(here.uncertainty)
    assert (there.most_uncertain, there.z_range, there.precision, there.label_names) == (
        here.most_uncertain, here.z_range, here.precision, here.label_names)
    assert devices and devices[0][0] == "cpu"  # the child's device choice reaches the lane
    assert steps and steps[-1].message == "Done"
    assert _scratch(os.getpid()) == []  # the shared arrays' files are gone


def test_cancel_stops_the_run_and_the_child_stays_for_the_next(proc, chest, card):
    lane, token = ModelLane(process=proc), CancelToken()
    seen = []

    def progress(p):
        seen.append(p)
        if p.message.startswith("Slice"):
            token.cancel()  # mid-volume, as the Cancel button does

    with pytest.raises(Cancelled):
        segment_volume(_ctx(lane, progress, token), card, chest)
    pid = proc.pid
    assert proc.alive and not any(p.message == "Done" for p in seen)
    run = segment_volume(_ctx(lane), card, chest, z=10)  # the same child goes on
    assert proc.pid == pid and run.labels[10].any()
    assert _scratch(os.getpid()) == []


def test_a_child_killed_mid_run_is_a_clear_error_and_the_next_run_starts_a_new_one(
        proc, chest, card):
    lane = ModelLane(process=proc)
    segment_volume(_ctx(lane), card, chest, z=5)  # the child is up
    victim = proc.pid

    def progress(p):
        if p.message.startswith("Slice") and proc.pid == victim:
            os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer would

    with pytest.raises(InferenceProcessError, match="stopped unexpectedly.*exit code -9"):
        segment_volume(_ctx(lane, progress), card, chest)
    run = segment_volume(_ctx(lane), card, chest, z=60)
    assert proc.pid not in (None, victim) and run.labels[60].any()
    assert _scratch(os.getpid()) == []


def test_errors_cross_with_their_own_type(proc, card):
    from medviewer.io.load import open_first
    import data_store

    rg1 = open_first([str(Path(data_store.__file__).parent / "data" / "RG1_UNCI.dcm")])
    with pytest.raises(DomainMismatch) as err:  # a radiograph for a CT model
        segment_volume(_ctx(ModelLane(process=proc)), card, rg1)
    assert err.value.card.ref == card.ref and err.value.fit.reason
    again = pickle.loads(pickle.dumps(err.value))
    assert isinstance(again, DomainMismatch) and str(again) == str(err.value)


def test_the_calling_interpreter_never_imports_torch(chest_ct_dir):
    script = (
        "import sys\n"
        "from medviewer.ai.registry import ModelRegistry\n"
        "from medviewer.io.load import open_first\n"
        "from medviewer.services.ai_process import InferenceProcess\n"
        "from medviewer.services.ai_runs import InferenceContext, ModelLane, segment_volume\n"
        f"vol = open_first([{str(chest_ct_dir)!r}])\n"
        "p = InferenceProcess()\n"
        "run = segment_volume(InferenceContext(ModelLane(process=p)),\n"
        "                     ModelRegistry().get('ct-trunk-organs'), vol, z=40)\n"
        "p.close()\n"
        "print(int(run.labels[40].astype(bool).sum()), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    voxels, torch_here = out.stdout.split()
    assert int(voxels) > 1000 and torch_here == "False"
