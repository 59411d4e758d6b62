"""Benchmark `inference`: the AI pipeline on this CPU side by side with the bare forward
passes and the fastest variants measured, plus `predict`'s peak memory against the volume.

Segmentation (``--model``, default ct-trunk-organs) on the real chest CT (100 slices 512x512), all in one run:
- pipeline: `medviewer.ai.inference.segment` as `predict` runs it (the precision chosen per
  model and machine by `ai.precision.choose`, the thread count of `--threads`, default every
  core as the command line; label map + streamed entropy back on the volume grid);
- the same pipeline forced to fp32 and to bf16, and without the card's whole-volume clean-up
  (the network path alone; ``cleanup_s`` is the difference);
- bare fp32: `model(x)` alone on exactly the windows the fp32 pipeline feeds the network;
- the pipeline in one lane (``MEDVIEWER_AI_LANES=1``: every thread inside one forward, as
  before the CPU lanes), with and without the clean-up;
- variants, bare forwards on the same windows: bf16 autocast; fp32 traced + frozen
  (TorchScript); on a CPU with several threads, bf16 and fp32 shared out among the lanes
  the pipeline uses (one thread each on 2 cores); for a model the pipeline runs as several windows per slice, also one
  whole-slice window per slice (fp32 and bf16). Each with its labels' agreement with the fp32
  forward's (>= 99.9 % to count as usable); the best variant overall and the best usable one
  are named;
- memory: peak RSS of `medviewer predict` on the chest CT (a child process) and of the same
  code path on the chest CT tiled to `--long` slices in memory, each / the loaded array's
  nbytes (int16 volume). Goals: pipeline <= 1.3x the best variant measured; peak <= 2.5x.
Classification (pneumonia-cxr) on PneumoniaMNIST test images through `classify` vs its bare
forward. On CUDA also the time of a whole 512x512x300 CT (goal <= 1 s). Usage:
python benchmarks/inference.py [--quick] [--device DEV] [--threads N] [--long N]
[--no-memory] [--slices N] [--model NAME]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, PEAK_WRAPPER, REPO, SHARED_DATA, emit  # noqa: E402

MIN_AGREEMENT = 0.999


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _recorded_windows(model, card, vol, spacing_zyx, device):
    """The exact tensors the fp32 pipeline feeds the network (a pass-through recorder)."""
    import torch

    from medviewer.ai.inference import segment
    from medviewer.jobs import drive

    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.inner(x)

    res = drive(segment(Recorder(model), card, vol.array, spacing_zyx, device, precision="fp32",
                        want_entropy=False))
    return seen, res.labels


def _model_grid_labels(model, card, vol, spacing_zyx, device, roi, precision, batch=8):
    """Labels on the model grid of every slice run as windows of ``roi`` (None: the card's
    sliding window), with the time of the forward passes alone."""
    import torch
    import torch.nn.functional as F

    from medviewer.ai.device import autocast
    from medviewer.ai.inference import sliding_window_2d
    from medviewer.ai.preprocess import plan_resample, to_model_tensor

    info = plan_resample(vol.array, spacing_zyx, card)
    xs = [to_model_tensor(vol.array, info, (a, min(a + batch, vol.shape[0]))).transpose(0, 1)
          .contiguous().to(device) for a in range(0, vol.shape[0], batch)]
    patch = tuple(card.input["patch"])

    def run():
        out = []
        with torch.inference_mode(), autocast(device, precision):
            for x in xs:
                if roi is None:
                    p = sliding_window_2d(x, patch, model, 0.25)
                else:
                    h, w = x.shape[-2:]
                    p = model(F.pad(x, (0, roi[1] - w, 0, roi[0] - h)))[..., :h, :w]
                out.append(p.float().argmax(1).to(torch.uint8).cpu())
        return torch.cat(out)

    return run


def round_robin(fns: dict, repeats: int) -> dict:
    """{name: median seconds}: every function once per round, ``repeats`` rounds, so that a
    changing background load (a shared machine) falls on all of them alike."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _variants(model, card, vol, spacing_zyx, device, seen) -> dict:
    """{name: (function to time, labels' agreement with the fp32 forward or None, notes)}.

    Bare forwards run over exactly the windows the fp32 pipeline feeds the network (``seen``);
    their agreement is the share of window pixels whose arg-max label equals the fp32
    forward's. A model the pipeline already runs as one whole-slice window per slice (the
    2.5D trunk model) gets no whole-slice variants: a different padding would change its
    instance-norm statistics and its labels, and measure nothing the pipeline could use."""
    import copy

    import torch

    from medviewer.ai.device import autocast
    from medviewer.ai.inference import cpu_lanes
    from medviewer.ai.preprocess import plan_resample

    def bare(m, precision):
        def run():
            with torch.inference_mode(), autocast(device, precision):
                for x in seen:
                    m(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        return run

    def bare_lanes(m, precision, lanes):
        """The same forwards shared out among ``lanes`` threads of threads/lanes torch
        threads each, as the pipeline's CPU lanes run them."""
        import threading

        def part(xs):
            with torch.inference_mode(), autocast(device, precision):
                for x in xs:
                    m(x)

        def run():
            before = torch.get_num_threads()
            torch.set_num_threads(max(1, before // lanes))
            try:
                ts = [threading.Thread(target=part, args=(seen[i::lanes],))
                      for i in range(lanes)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            finally:
                torch.set_num_threads(before)
        return run

    def argmaxes(m, precision):
        with torch.inference_mode(), autocast(device, precision):
            return [m(x).float().argmax(1) for x in seen]

    ref = argmaxes(model, "fp32")
    total = sum(int(r.numel()) for r in ref)

    def agreement(m, precision) -> float:
        same = sum(int((a == b).sum()) for a, b in zip(argmaxes(m, precision), ref))
        return same / max(total, 1)

    out = {"bare_fp32": (bare(model, "fp32"), 1.0, {}),
           "bare_bf16": (bare(model, "bf16"), agreement(model, "bf16"), {})}
    with torch.inference_mode():
        frozen = torch.jit.freeze(torch.jit.trace(copy.deepcopy(model).eval(), seen[0]))
        frozen(seen[0])
    out["jit_frozen_fp32"] = (bare(frozen, "fp32"), agreement(frozen, "fp32"), {})
    lanes = cpu_lanes(torch.get_num_threads(), len(seen)) if device == "cpu" else 1
    if lanes > 1:  # agreement: the same forwards as bare_bf16 / bare_fp32, in other threads
        out["bare_bf16_lanes"] = (bare_lanes(model, "bf16", lanes),
                                  out["bare_bf16"][1], {"lanes": lanes})
        out["bare_fp32_lanes"] = (bare_lanes(model, "fp32", lanes), 1.0, {"lanes": lanes})
    windows = sum(int(x.shape[0]) for x in seen)
    if windows <= vol.shape[0]:  # already one window per slice
        return out
    grid = plan_resample(vol.array, spacing_zyx, card).model_shape[1:]
    side = [-(-n // 16) * 16 for n in grid]  # the whole slice, rounded up to the U-Net's 16
    ref_labels = _model_grid_labels(model, card, vol, spacing_zyx, device, None, "fp32")()
    for name, prec in (("whole_slice_fp32", "fp32"), ("whole_slice_bf16", "bf16")):
        labels = _model_grid_labels(model, card, vol, spacing_zyx, device, side, prec)
        agree = float((labels() == ref_labels).float().mean())
        out[name] = (labels, agree, {"window": side})
    return out


def bench_segmentation(card, device: str, repeats: int, threads: int,
                       slices: int = 0) -> dict:
    from medviewer.ai.device import configure_threads
    from medviewer.ai.inference import segment
    from medviewer.ai.precision import choose
    from medviewer.ai.registry import load_model
    from medviewer.io.load import open_first
    from medviewer.jobs import drive

    configure_threads(threads)
    vol = open_first([CHEST_CT])
    if slices:  # the middle N slices
        a = max(0, (vol.shape[0] - slices) // 2)
        vol = type(vol)(vol.array[a:a + slices], type(vol.geometry)(
            shape=(slices,) + vol.shape[1:], spacing=vol.geometry.spacing,
            origin=vol.geometry.origin, direction=vol.geometry.direction))
    spacing_zyx = vol.geometry.spacing[::-1]
    model = load_model(card, device)
    prec = choose(card, device)

    def run(precision=prec, **kw):
        return drive(segment(model, card, vol.array, spacing_zyx, device, precision=precision,
                             want_entropy=False, entropy_sink=lambda *a: None, **kw))

    mid = vol.shape[0] // 2
    run(slice_index=mid)  # warm-up (first-call allocations)
    out = {"model": card.ref, "volume": list(vol.shape), "threads": threads, "precision": prec,
           "timing": f"median of {repeats} interleaved rounds"}
    out["slice_s"] = round(round_robin({"s": lambda: run(slice_index=mid)}, repeats * 3)["s"], 4)
    seen, _labels = _recorded_windows(model, card, vol, spacing_zyx, device)
    out["forward_calls"] = len(seen)
    out["windows"] = sum(int(x.shape[0]) for x in seen)
    variants = _variants(model, card, vol, spacing_zyx, device, seen)
    def one_lane(**kw):  # the pipeline as it was before CPU lanes: every thread in one forward
        os.environ["MEDVIEWER_AI_LANES"] = "1"
        try:
            return run(**kw)
        finally:
            os.environ.pop("MEDVIEWER_AI_LANES", None)

    fns = {"pipeline": run, "pipeline_fp32": lambda: run("fp32"),
           "pipeline_bf16": lambda: run("bf16"),
           "pipeline_no_cleanup": lambda: run(postprocess=False),
           "pipeline_one_lane": one_lane,
           "pipeline_one_lane_no_cleanup": lambda: one_lane(postprocess=False)}
    fns.update({k: v[0] for k, v in variants.items()})
    med = round_robin(fns, repeats)
    out["volume_s"] = round(med["pipeline"], 3)
    out["pipeline_fp32_s"] = round(med["pipeline_fp32"], 3)
    out["pipeline_bf16_s"] = round(med["pipeline_bf16"], 3)
    # the network path alone (windows in, labels and entropy on the volume grid out), and the
    # card's whole-volume clean-up (post-processing) that the full pipeline adds to it
    out["pipeline_no_cleanup_s"] = round(med["pipeline_no_cleanup"], 3)
    out["cleanup_s"] = round(med["pipeline"] - med["pipeline_no_cleanup"], 3)
    from medviewer.ai.inference import cpu_lanes

    import torch

    out["lanes"] = cpu_lanes(torch.get_num_threads(), vol.shape[0]) if device == "cpu" else 1
    out["pipeline_one_lane_s"] = round(med["pipeline_one_lane"], 3)
    out["pipeline_one_lane_no_cleanup_s"] = round(med["pipeline_one_lane_no_cleanup"], 3)
    out["lanes_speedup"] = round(med["pipeline_one_lane"] / med["pipeline"], 3)
    out["variants"] = {k: {"s": round(med[k], 3), "agreement": None if v[1] is None
                           else round(v[1], 6), **v[2]} for k, v in variants.items()}
    out["bare_forward_volume_s"] = out["variants"]["bare_fp32"]["s"]
    # like for like: each pipeline against the bare forwards of its own precision
    out["overhead_vs_bare"] = round(out["pipeline_fp32_s"] / out["bare_forward_volume_s"], 3)
    out["pipeline_bf16_vs_bare_bf16"] = round(out["pipeline_bf16_s"]
                                              / out["variants"]["bare_bf16"]["s"], 3)
    vs = out["variants"]
    best = min(vs, key=lambda k: vs[k]["s"])
    usable = {k: v for k, v in vs.items()
              if v["agreement"] is None or v["agreement"] >= MIN_AGREEMENT}
    best_ok = min(usable, key=lambda k: usable[k]["s"])
    out["best_variant"] = best
    out["vs_best_variant"] = round(out["volume_s"] / vs[best]["s"], 3)
    out["best_usable_variant"] = best_ok
    out["vs_best_usable_variant"] = round(out["volume_s"] / usable[best_ok]["s"], 3)
    out["no_cleanup_vs_best_usable_variant"] = round(
        out["pipeline_no_cleanup_s"] / usable[best_ok]["s"], 3)
    if device.startswith("cuda"):  # the GPU goal: a whole 512x512x300 CT
        import torch

        big = np.tile(vol.array, (-(-300 // vol.shape[0]), 1, 1))[:300]
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        drive(segment(model, card, big, spacing_zyx, device, precision=prec))
        out["ct_512x512x300_s"] = round(time.perf_counter() - t0, 3)
    return out


def bench_memory(threads: int, long_slices: int, model: str) -> dict:
    import tempfile

    from medviewer.io.load import open_first

    env = dict(os.environ, PYTHONPATH=str(REPO))
    nbytes = int(open_first([CHEST_CT]).array.nbytes)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, str(REPO / "benchmarks"),
                              "predict", "--model", model, str(CHEST_CT), "--out",
                              f"{tmp}/chest.nii.gz"],
                             env=env, cwd=REPO, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = int(res.stderr.strip().splitlines()[-1].split()[1])
    out = {"chest_ct": {"array_nbytes": nbytes, "peak_rss": peak,
                        "ratio": round(peak / nbytes, 2), "predict_wall_s": round(wall, 1)}}
    if long_slices:
        res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "_predict_memory.py"),
                              str(long_slices), str(threads), model], env=env, cwd=REPO,
                             capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(res.stderr[-3000:])
        rec = json.loads(res.stdout.strip().splitlines()[-1])
        rec["ratio"] = round(rec["peak_rss"] / rec["array_nbytes"], 2)
        rec["ratio_above_libraries"] = round(
            (rec["peak_rss"] - rec["rss_before_volume"]) / rec["array_nbytes"], 2)
        out["long"] = rec
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
    ap.add_argument("--quick", action="store_true", help="1 repeat instead of 3; --long 300")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: every core, as `medviewer predict`)")
    ap.add_argument("--long", type=int, default=None,
                    help="slices of the tiled chest CT for the memory check (default 1000)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory children")
    ap.add_argument("--slices", type=int, default=0,
                    help="segmentation timings on the middle N chest CT slices (default all 100)")
    ap.add_argument("--no-classification", action="store_true",
                    help="skip the classification model (its data is not at hand, e.g. on a "
                         "lent GPU machine: benchmarks/gpu_check.sh)")
    ap.add_argument("--model", default="ct-trunk-organs",
                    help="the segmentation model (default ct-trunk-organs)")
    a = ap.parse_args()
    repeats = 1 if a.quick else 3
    from medviewer.ai.device import choose_device, cpu_cores, device_label
    from medviewer.ai.registry import ModelRegistry

    threads = a.threads or cpu_cores()
    long_slices = a.long if a.long is not None else (300 if a.quick else 1000)
    device = choose_device(a.device)
    reg = ModelRegistry()
    seg = reg.get(a.model)
    cls = reg.get("pneumonia-cxr")
    out = {"benchmark": "inference", "quick": a.quick,
           "load_avg_start": os.getloadavg()[0]}
    out["segmentation"] = bench_segmentation(seg, device, repeats, threads, a.slices)
    out["device"] = device_label(device)  # after the threads are set
    print("segmentation", out["segmentation"], file=sys.stderr)
    if not a.no_classification:
        out["classification"] = bench_classification(cls, device, repeats)
    if not a.no_memory:
        out["memory"] = bench_memory(threads, long_slices, a.model)
        print("memory", out["memory"], file=sys.stderr)
    s = out["segmentation"]
    out["goal_vs_best_variant_le_1.3x"] = s["vs_best_variant"] <= 1.3
    out["goal_vs_best_usable_variant_le_1.3x"] = s["vs_best_usable_variant"] <= 1.3
    out["goal_no_cleanup_vs_best_usable_variant_le_1.3x"] = (
        s["no_cleanup_vs_best_usable_variant"] <= 1.3)
    if "memory" in out:
        ratios = [out["memory"][k]["ratio"] for k in ("chest_ct", "long") if k in out["memory"]]
        out["goal_peak_memory_le_2.5x"] = ratios[-1] <= 2.5
    out["load_avg_end"] = os.getloadavg()[0]
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
