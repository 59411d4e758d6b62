"""Benchmark `inference`: latency of the AI pipeline on CPU, and its overhead over a bare forward.

Segmentation (the first segmentation model in the registry) on the real chest CT: one slice and
the whole volume through `medviewer.ai.inference.segment` (preprocessing, resampling to the
model's spacing, sliding window; the label map and the entropy map brought back to the
volume grid, one batch behind the network on a helper thread: what the app runs).
Classification (pneumonia-cxr) on real PneumoniaMNIST test images through `classify`.
Baseline, same run and same tensors: the bare `model(x)` forward passes only.
Goal: pipeline / bare <= 1.2x. Usage: python benchmarks/inference.py [--quick] [--device DEV]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, SHARED_DATA, emit  # noqa: E402


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_segmentation(card, device: str, repeats: int) -> dict:
    import torch

    from medviewer.ai.device import configure_threads
    from medviewer.ai.inference import segment
    from medviewer.jobs import drive
    from medviewer.ai.registry import load_model
    from medviewer.io.load import open_first

    configure_threads()
    vol = open_first([CHEST_CT])
    spacing_zyx = vol.geometry.spacing[::-1]
    model = load_model(card, device)
    run = lambda **kw: drive(segment(model, card, vol.array, spacing_zyx, device, **kw))  # noqa
    run(slice_index=50)  # warm-up (first-call allocations)
    out = {"model": card.ref, "volume": list(vol.shape)}
    out["slice_s"] = round(timed(lambda: run(slice_index=50), repeats * 3), 4)
    out["volume_s"] = round(timed(lambda: run(), repeats), 3)
    res = run()
    assert res.labels.shape == vol.shape
    # bare forward on exactly the tensors the pipeline feeds the network: record them with a
    # pass-through wrapper (it calls the real model), then time the model alone on them
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.inner(x)

    drive(segment(Recorder(model), card, vol.array, spacing_zyx, device))

    def bare():
        with torch.inference_mode():
            for x in seen:
                model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    out["forward_calls"] = len(seen)
    out["patch_shape"] = list(seen[0].shape)
    out["bare_forward_volume_s"] = round(timed(bare, repeats), 3)
    out["overhead_vs_bare"] = round(out["volume_s"] / out["bare_forward_volume_s"], 3)
    return out


def bench_classification(card, device: str, repeats: int) -> dict:
    import torch

    from medviewer.ai.inference import classify
    from medviewer.jobs import drive
    from medviewer.ai.preprocess import prepare_image_2d
    from medviewer.ai.registry import load_model

    data = np.load(SHARED_DATA / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz")
    images = data["test_images"][:200]
    model = load_model(card, device)
    drive(classify(model, card, images[0], device))
    pipe = timed(lambda: [drive(classify(model, card, im, device)) for im in images], repeats)
    xs = [torch.from_numpy(prepare_image_2d(im, card))[None].to(device) for im in images]

    def bare():
        with torch.inference_mode():
            for x in xs:
                model(x)

    b = timed(bare, repeats)
    return {"model": card.ref, "images": len(images), "per_image_ms": round(1000 * pipe / len(images), 3),
            "bare_per_image_ms": round(1000 * b / len(images), 3),
            "overhead_vs_bare": round(pipe / b, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat instead of 3")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    a = ap.parse_args()
    repeats = 1 if a.quick else 3
    from medviewer.ai.device import choose_device, device_label
    from medviewer.ai.registry import ModelRegistry

    device = choose_device(a.device)
    reg = ModelRegistry()
    cards = reg.list()
    seg = next((c for c in cards if c.task == "segmentation"), None)
    cls = reg.get("pneumonia-cxr")
    out = {"benchmark": "inference", "quick": a.quick, "device": device_label(device)}
    if seg is not None:
        out["segmentation"] = bench_segmentation(seg, device, repeats)
        print("segmentation", out["segmentation"], file=sys.stderr)
    out["classification"] = bench_classification(cls, device, repeats)
    ratios = [out[k]["overhead_vs_bare"] for k in ("segmentation", "classification") if k in out]
    out["goal_overhead_le_1.2x"] = all(r <= 1.2 for r in ratios)
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
