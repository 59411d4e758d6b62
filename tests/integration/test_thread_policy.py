"""Thread policy: work started from the app (AI jobs, fine-tunes) leaves one core to the GUI;
the command line takes every core. Observed on torch itself and on the trainer's start event."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medviewer.ai.device import cpu_cores, worker_threads
from medviewer.ai.training.ddp import setup, threads_per_process
from medviewer.services.ai_runs import ModelLane
from medviewer.services.finetune import app_threads, trainer_args
from medviewer.storage.store import LabelStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import learn_fixtures  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_app_lane_leaves_a_core_and_the_cli_takes_all(restore_threads, shared_data, tmp_path):
    from medviewer.cli.predict import main as predict

    assert worker_threads() == max(1, cpu_cores() - 1)
    ModelLane().device()  # the app's AI worker lane (ui.ai.worker.AiWorker builds it so)
    assert torch.get_num_threads() == max(1, cpu_cores() - 1)
    data = np.load(shared_data / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz")
    png = tmp_path / "cxr.png"
    Image.fromarray(data["val_images"][0]).save(png)
    assert predict(["predict", "--model", "pneumonia-cxr", str(png), "--out",
                    str(tmp_path / "out.jsonl")]) == 0
    assert torch.get_num_threads() == cpu_cores()


def test_trainer_threads_from_the_app_and_from_the_cli(restore_threads):
    args = trainer_args("ct-abdomen-organs:1.0.0", 3, 0.01, "/tmp/m", threads=app_threads())
    assert args[args.index("--threads") + 1] == str(max(1, cpu_cores() - 1))
    given = trainer_args("m:1.0.0", 3, 0.01, "/tmp/m", extra=["--threads", "1"], threads=5)
    assert given.count("--threads") == 1 and given[given.index("--threads") + 1] == "1"
    assert "--threads" not in trainer_args("m:1.0.0", 3, 0.01, "/tmp/m")  # CLI: every core
    assert threads_per_process(1) == cpu_cores()
    assert threads_per_process(2, 3) == 1 and threads_per_process(1, 1) == 1
    setup("cpu", 1)
    assert torch.get_num_threads() == 1
    setup("cpu")
    assert torch.get_num_threads() == cpu_cores()


@pytest.mark.slow  # a training child process
def test_a_fine_tune_with_the_apps_arguments_runs_on_all_cores_but_one(tmp_path):
    ws = tmp_path / "ws"
    with LabelStore(ws) as store:
        learn_fixtures.cls_cases(store, n=24, seed=0)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "medviewer", "finetune", "--workspace", str(ws),
           *trainer_args("pneumonia-cxr:1.0.0", 1, 0.01, tmp_path / "models", promote=False,
                         threads=app_threads())]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    events = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
    start = next(e for e in events if e["event"] == "start")
    assert start["threads"] == max(1, cpu_cores() - 1)
