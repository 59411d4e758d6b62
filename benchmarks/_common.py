"""Shared helpers for benchmarks: paths, timing, peak memory in a child process, JSON output."""
from __future__ import annotations

import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
CHEST_CT = SHARED_DATA / "tcia_cmb_crc_ct_chest"
CACHE = Path(os.environ.get("MEDVIEWER_BENCH_CACHE", "/tmp/medviewer_bench"))
# benchmarks never read or write the user's own settings (saved layout, window size)
os.environ["MEDVIEWER_SETTINGS_DIR"] = str(CACHE / "settings")
# no background torch import unless a benchmark measures it (responsiveness does)
os.environ.setdefault("MEDVIEWER_AI_PRELOAD", "0")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started (``VmHWM``). Not ``ru_maxrss``:
    Linux carries that over from the parent across fork + exec, so a child started by a big
    benchmark process reported the parent's peak (both memory children read 1.235 GB)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# runs `medviewer` in this interpreter and prints its peak memory (VmHWM) last on stderr
PEAK_WRAPPER = ("import atexit, runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
                "from _common import peak_rss_bytes; "
                "atexit.register(lambda: print('PEAK_RSS', peak_rss_bytes(), file=sys.stderr)); "
                "sys.argv[0] = 'medviewer'; runpy.run_module('medviewer.cli', run_name='__main__')")


def median_ms(samples) -> float:
    return 1000.0 * statistics.median(samples)


def run_child(code: str, *args: str, timeout: int = 900) -> dict:
    """Run python code in a fresh interpreter; it must print one JSON line last."""
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{REPO / 'benchmarks'}", QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=REPO)
    if res.returncode != 0:
        raise RuntimeError(f"child failed ({res.returncode}):\n{res.stdout}\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def emit(result: dict) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps(result, sort_keys=True))


def now() -> float:
    return time.perf_counter()


def _spin() -> None:  # pragma: no cover - a CPU hog for the loaded case
    while True:
        pass


@contextmanager
def busy_cores(n: int):
    """``n`` processes keeping a core each at 100 % while the block runs: the "machine is
    busy" case of the benchmarks' ``--busy N``."""
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(n)]
    for h in hogs:
        h.start()
    try:
        yield
    finally:
        for h in hogs:
            h.terminate()
        for h in hogs:
            h.join()
