"""The CUDA path (skipped without an NVIDIA GPU): mixed precision, the model loaded once, the
volume moved to the GPU once, labels and entropy computed there and brought back per batch.
On a GPU machine: ``pytest -q tests/unit/ai/test_cuda_inference.py -s`` (prints the time of a
whole 512x512x300 CT); ``python benchmarks/inference.py --device cuda --no-memory``."""
import time

import numpy as np
import pytest
import torch

from medviewer.ai import inference
from medviewer.ai.inference import ModelCache, segment
from medviewer.ai.precision import choose
from medviewer.ai.registry import ModelRegistry
from medviewer.io.load import open_first
from medviewer.jobs import drive

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")


def test_whole_ct_on_the_gpu_moves_the_volume_once(chest_ct_dir, monkeypatch):
    vol = open_first([chest_ct_dir])
    sx, sy, sz = vol.geometry.spacing
    spacing = (sz, sy, sx)
    card = ModelRegistry().get("ct-abdomen-organs:1.0.0")
    cache = ModelCache()
    gpu_model = cache.get(card, "cuda")
    assert cache.get(card, "cuda") is gpu_model  # loaded once
    assert next(gpu_model.parameters()).is_cuda
    moves = []
    real = inference._to_device
    monkeypatch.setattr(inference, "_to_device",
                        lambda *a: moves.append(a[1]) or real(*a))
    prec = choose(card, "cuda")
    assert prec in ("bf16", "fp16")
    res = drive(segment(gpu_model, card, vol.array, spacing, "cuda", precision=prec))
    assert moves == [(0, vol.shape[0])]  # the whole volume crossed once
    assert res.labels.shape == vol.shape and res.labels.dtype == np.uint8
    assert res.entropy.shape == vol.shape and np.isfinite(res.entropy).all()
    cpu_model = ModelCache().get(card, "cpu")
    ref = drive(segment(cpu_model, card, vol.array, spacing, "cpu", precision="fp32",
                        want_entropy=False)).labels
    assert float(np.mean(res.labels == ref)) >= 0.99  # mixed precision vs fp32 on the CPU
    fp32 = drive(segment(gpu_model, card, vol.array, spacing, "cuda", precision="fp32",
                         want_entropy=False)).labels
    assert float(np.mean(fp32 == ref)) >= 0.9999

    big = np.tile(vol.array, (3, 1, 1))  # 512 x 512 x 300
    drive(segment(gpu_model, card, big[:8], spacing, "cuda", precision=prec))  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = drive(segment(gpu_model, card, big, spacing, "cuda", precision=prec))
    wall = time.perf_counter() - t0
    assert out.labels.shape == big.shape
    print(f"\nwhole CT 512x512x300 on {torch.cuda.get_device_name()}: {wall:.2f} s "
          f"({prec}; goal <= 1 s)")
