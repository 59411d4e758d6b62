"""Fine-tuning under torchrun: two gloo processes on the CPU produce one valid model version."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.ai.registry import ModelRegistry, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "ai"))
from _training_manifests import REPO, seg_workspace  # noqa: E402

pytestmark = pytest.mark.slow  # two torchrun processes


def test_torchrun_two_gloo_processes_write_a_loadable_version(tmp_path):
    man = seg_workspace(tmp_path / "ws", [70, 71, 72, 73, 74, 75, 76], [66, 67])
    models = tmp_path / "models"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
           "--nproc_per_node=2", "-m", "medviewer.ai.training", "--manifest", str(man),
           "--base", "ct-abdomen-organs:1.0.0", "--models-dir", str(models), "--epochs", "2",
           "--batch-size", "2", "--device", "cpu",
           "--min-val-units", "1", "--min-val-per-class", "0"]  # DDP, not the gate's minimum
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds.count("done") == 1  # only rank 0 prints
    assert kinds.count("epoch") == 2
    start, done = events[0], events[-1]
    assert start["world_size"] == 2 and start["device"] == "cpu"
    assert start["train"] == 7 and start["val"] == 2
    # 7 slices over 2 ranks, batch 2: each rank runs ceil(4 / 2) = 2 steps per epoch
    assert {e["steps"] for e in events if e["event"] == "progress"} == {2}
    card = ModelRegistry(user_dir=models).get(f"ct-abdomen-organs:{done['version']}")
    card.verify()
    assert card.parent_version == "1.0.0" and card.training["world_size"] == 2
    assert card.training["command"].startswith("torchrun --nproc_per_node=2")
    model = load_model(card)
    assert model.training is False
    left = sorted(p.name for p in (models / "ct-abdomen-organs").iterdir())
    assert "1.1.0" in left
    assert not [n for n in left if n.startswith(".staging")]  # nothing half-written left
