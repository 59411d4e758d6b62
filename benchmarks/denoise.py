"""Benchmark `denoise`: the enhancement filters (services.enhance) side by side.

Quality: on the learned denoiser's held-out slices (the last fifth of every training series
and a whole brain MR never trained on; real CT and MR scaled to [0, 1]) with Gaussian noise of
3 % (CT) and 5 % (MR) of the range: PSNR (dB) and SSIM of the noisy input, of non-local means,
bilateral, anisotropic diffusion and the learned denoiser, per modality; the learned one's
gain over the best classical filter. Speed: ms per 512x512 slice of the chest CT for every
filter (median of 5), with ``--busy N`` while N other processes keep a core each busy.
``--write-card`` writes the quality table into models/denoise-ae/<version>/denoiser.json.
Usage: python benchmarks/denoise.py [--busy N] [--write-card]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, busy_cores, emit  # noqa: E402


def speed(repeats: int = 5) -> dict:
    from medviewer.services import enhance as E
    from medviewer.services.studies import load, scan

    vol = load(scan([str(CHEST_CT)]).series[0])
    sl = vol.array[50]
    out = {}
    for name in E.FILTERS:
        E.filter_slice(sl, vol.geometry.spacing[:2], name)  # warm-up (model load, imports)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            E.filter_slice(sl, vol.geometry.spacing[:2], name)
            times.append(time.perf_counter() - t0)
        out[name] = round(1000 * float(np.median(times)), 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=0, metavar="N")
    ap.add_argument("--write-card", action="store_true")
    a = ap.parse_args()
    from medviewer.ai.denoise import CARD, builtin_dir
    from medviewer.services.enhance import compare_on_held_out

    with busy_cores(a.busy):
        quality = compare_on_held_out()
        ms = speed()
    gains = {}
    for modality, rows in quality.items():
        best = max((k for k in rows if k not in ("noisy", "learned")), key=lambda k: rows[k]["psnr"])
        gains[modality] = {"best_classical": best,
                           "learned_minus_best_classical_psnr_db":
                               round(rows["learned"]["psnr"] - rows[best]["psnr"], 2),
                           "learned_minus_noisy_psnr_db":
                               round(rows["learned"]["psnr"] - rows["noisy"]["psnr"], 2)}
    out = {"benchmark": "denoise", "busy": a.busy, "held_out": quality, "gains": gains,
           "ms_per_512x512_slice": ms}
    if a.write_card:
        from medviewer.core.atomic import atomic_write_text

        folder = builtin_dir()
        card = json.loads((folder / CARD).read_text())
        card["metrics"]["held_out_vs_classical"] = {"results": quality, "gains": gains,
                                                    "measured_by": "benchmarks/denoise.py"}
        atomic_write_text(folder / CARD, json.dumps(card, indent=2, sort_keys=True))
        out["card"] = str(folder / CARD)
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
