"""Benchmark `finetune`: corrected slices -> a validated, promoted model version, end to end.

A fresh workspace gets the starter CT model's prediction on TotalSegmentator's example_ct and
a 'corrected' child in which N slices of z < 82 (default 24) and every other slice of z 82..111
are replaced by the reference labels and listed as reviewed, through the store's API (the
reference plays the clinician; tests/learn_fixtures.seg_case); the reader marks validation
slabs until the frozen validation set reaches the minimum (5 units, each organ in 2). Only
those human-confirmed slices train and validate. Then the
real command runs as a child process, exactly as the Fine-tune button starts it:

    medviewer finetune --workspace W --base ct-abdomen-organs:1.0.0 --models-dir D ...

(manifest build, training with early stopping, the gate on the frozen validation slabs,
report, new version, promotion). Printed: wall time from launch to the 'done' event, the
validation metric before/after (the gate's active vs candidate) with bootstrap 95 % intervals,
classes that fell by more than the margin, calibration error and false-positive volume, whether
it was promoted, and
a baseline measured in the same run: the bare optimiser steps alone (forward + backward +
AdamW on tensors of the batch shape, as many steps as the run made). Goal on a 2-core CPU:
<= 180 s; with a GPU: <= 20 s.

Usage: python benchmarks/finetune.py [--quick] [--slices N] [--device cpu|cuda|auto]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, emit  # noqa: E402

sys.path.insert(0, str(REPO))


def make_workspace(root: Path, n_slices: int) -> dict:
    from medviewer.storage.store import LabelStore
    from tests.learn_fixtures import seg_case

    with LabelStore(root / "workspace") as store:
        case = seg_case(store, n_slices=n_slices, seed=0)
    return case


def run_finetune(root: Path, epochs: int, device: str) -> tuple[float, list]:
    cmd = [sys.executable, "-m", "medviewer", "finetune", "--workspace", str(root / "workspace"),
           "--base", "ct-abdomen-organs:1.0.0", "--models-dir", str(root / "models"),
           "--epochs", str(epochs), "--seed", "0", "--device", device]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    wall = time.perf_counter() - t0
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not events or events[-1].get("event") != "done":
        raise RuntimeError(f"finetune failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return wall, events


def bare_steps(card_dir: Path, steps: int, batch: int, device: str) -> float:
    """Seconds for ``steps`` optimiser steps of the same network on random tensors."""
    import torch
    from monai.losses import DiceCELoss

    from medviewer.ai.architectures import build
    from medviewer.ai.cards import ModelCard

    card = ModelCard.load(card_dir)
    torch.manual_seed(0)
    net = build(card.architecture["name"], card.architecture["params"]).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    h, w = card.input["patch"]
    x = torch.rand(batch, 1, h, w, device=device)
    y = torch.randint(0, len(card.labels), (batch, 1, h, w), device=device)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="accepted for uniformity: the run is already short (early stopping)")
    ap.add_argument("--slices", type=int, default=24,
                    help="corrected slices below z 82 (default 24)")
    ap.add_argument("--epochs", type=int, default=30, help="max epochs (default 30, as the app)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    a = ap.parse_args()
    epochs = a.epochs
    with tempfile.TemporaryDirectory(prefix="mv-finetune-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        case = make_workspace(root, a.slices)
        setup_s = time.perf_counter() - t0
        wall, events = run_finetune(root, epochs, a.device)
        by = {}
        for e in events:
            by.setdefault(e["event"], []).append(e)
        start, done, gate = by["start"][0], by["done"][-1], by["gate"][-1]
        epochs_run = len(by.get("epoch", []))
        steps = sum(max((p["step"] for p in by.get("progress", []) if p["epoch"] == e["epoch"]),
                        default=0) for e in by.get("epoch", []))
        card = json.loads((Path(done["folder"]) / "model.json").read_text())
        batch = int(card["training"]["config"].get("batch_size") or 4)
        device = "cuda" if str(start.get("device", "cpu")).startswith("cuda") else "cpu"
        bare = bare_steps(Path(done["folder"]), max(steps, 1), batch, device)
    goal = 20.0 if device == "cuda" else 180.0
    out = {"benchmark": "finetune", "quick": a.quick, "device": start.get("device"),
           "corrected_slices": a.slices, "train_slices": start.get("train"),
           "val_slices": start.get("val"), "epochs_run": epochs_run, "max_epochs": epochs,
           "optimizer_steps": steps, "setup_workspace_s": round(setup_s, 1),
           "wall_s": round(wall, 1), "bare_steps_s": round(bare, 1),
           "overhead_vs_bare_steps": round(wall / max(bare, 1e-9), 2),
           "metric": gate["metric"], "before": gate["active"]["value"],
           "after": gate["candidate"]["value"], "per_class_before": gate["active"]["per_class"],
           "per_class_after": gate["candidate"]["per_class"], "ci": gate.get("ci"),
           "class_falls": gate.get("class_falls"), "gate_passed": gate.get("passed"),
           "val_units": (gate.get("validation") or {}).get("units"),
           "ece_before": gate["active"].get("ece"), "ece_after": gate["candidate"].get("ece"),
           "fp_ml_before": (gate["active"].get("fp_volume_ml") or {}).get("total"),
           "fp_ml_after": (gate["candidate"].get("fp_volume_ml") or {}).get("total"),
           "promoted": done["promoted"],
           "version": done["version"], "goal_s": goal, "goal_met": bool(wall <= goal)}
    print(f"case: {case.get('counts', '')}", file=sys.stderr)
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
