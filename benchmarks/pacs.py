"""Benchmark `pacs`: retrieve one series (the 100-slice chest CT) from a local Orthanc by C-GET,
C-MOVE and WADO-RS (ours: medviewer.services.pacs) against dcmtk's getscu and movescu on the
same server in the same run (dcmtk with ``TCP_NODELAY=1``, its fastest setting here).

Measured per method: time to the first instance written in the output folder (a watcher
thread polls the folder every 2 ms, the same for every method) and to the whole series
(the call's return, every file written). Median of ``--repeat`` runs, each into an empty
folder. Goals (issue 15): first image <= 1 s, whole series <= 5 s, within 1.5x of dcmtk.
One JSON line per method, then a summary line with the ratios against dcmtk.

Usage: python benchmarks/pacs.py [--repeat 5] [--busy N]   (needs orthanc,
orthanc-dicomweb and dcmtk: packaging/install.sh --test installs them)"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import CHEST_CT, busy_cores, emit  # noqa: E402
from orthanc_server import ORTHANC_AET, OUR_AET, PASSWORD, USER, Orthanc  # noqa: E402


def _first_file_watch(folder: Path, t0: float, out: list, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            if any(True for _ in folder.rglob("*") if _.is_file()):
                out.append(time.perf_counter() - t0)
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)


def _timed(fn, folder: Path) -> tuple:
    folder.mkdir(parents=True)
    first: list = []
    stop = threading.Event()
    t0 = time.perf_counter()
    w = threading.Thread(target=_first_file_watch, args=(folder, t0, first, stop), daemon=True)
    w.start()
    fn(folder)
    total = time.perf_counter() - t0
    stop.set()
    w.join()
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    return (first[0] if first else total), total, n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--busy", type=int, default=0, help="keep N cores busy while measuring")
    args = ap.parse_args()
    for tool in ("getscu", "movescu"):
        if shutil.which(tool) is None:
            print(f"pacs benchmark: {tool} is missing (apt-get install dcmtk)", file=sys.stderr)
            return 2
    from medviewer.services import pacs

    work = Path(tempfile.mkdtemp(prefix="medviewer-pacs-bench-"))
    server = Orthanc(work / "orthanc").start()
    try:
        server.upload_files(sorted(CHEST_CT.glob("*.dcm")))
        dimse = pacs.PacsServer(host="127.0.0.1", port=server.dicom_port, called_aet=ORTHANC_AET,
                                calling_aet=OUR_AET, move_port=server.move_port, timeout=30)
        web = pacs.PacsServer(url=server.dicomweb_url, username=USER, password=PASSWORD,
                              timeout=30)
        (m,) = pacs.find(dimse, pacs.Query(level="series"))
        keys = ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={m.study_uid}",
                "-k", f"SeriesInstanceUID={m.series_uid}"]
        common = ["-S", "-aet", OUR_AET, "-aec", ORTHANC_AET, "127.0.0.1", str(server.dicom_port)]

        # dcmtk at its best: TCP_NODELAY=1 turns Nagle's algorithm off (Debian's build leaves
        # it on: getscu then took 4.6 s for this series, ~45 ms per instance of delayed ACKs)
        env = dict(os.environ, TCP_NODELAY="1")

        def dcmtk(tool, out, extra=()):
            subprocess.run([tool, *extra, *common, *keys, "-od", str(out)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

        methods = {
            "c-get": lambda out: pacs.retrieve(dimse, m.study_uid, m.series_uid, out=out,
                                               method="get"),
            "c-move": lambda out: pacs.retrieve(dimse, m.study_uid, m.series_uid, out=out,
                                                method="move"),
            "wado-rs": lambda out: pacs.retrieve(web, m.study_uid, m.series_uid, out=out),
            "getscu": lambda out: dcmtk("getscu", out),
            "movescu": lambda out: dcmtk("movescu", out, ["-aem", OUR_AET, "--port",
                                                          str(server.move_port)]),
        }
        times = {k: [] for k in methods}
        with busy_cores(args.busy):
            for name, fn in methods.items():  # warm-up: server caches, imports
                (work / f"warm-{name}").mkdir()
                fn(work / f"warm-{name}")
            for r in range(args.repeat):
                for name, fn in methods.items():  # interleaved: drift hits every method alike
                    first, total, n = _timed(fn, work / f"{name}-{r}")
                    if n != m.n_instances:
                        raise RuntimeError(f"{name} wrote {n} of {m.n_instances} files")
                    times[name].append((first, total))
        med = {k: (statistics.median(f for f, _ in v), statistics.median(t for _, t in v))
               for k, v in times.items()}
        for name, (first, total) in med.items():
            emit({"benchmark": "pacs", "method": name, "instances": m.n_instances,
                  "first_image_s": round(first, 4), "series_s": round(total, 4),
                  "busy_cores": args.busy, "repeat": args.repeat})
        base = {"c-get": "getscu", "c-move": "movescu", "wado-rs": "getscu"}
        summary = {"benchmark": "pacs", "busy_cores": args.busy, "repeat": args.repeat}
        for ours, ref in base.items():
            summary[f"{ours}_vs_{ref}_series_ratio"] = round(med[ours][1] / med[ref][1], 3)
            summary[f"{ours}_vs_{ref}_first_ratio"] = round(med[ours][0] / med[ref][0], 3)
            summary[f"{ours}_first_le_1s"] = med[ours][0] <= 1.0
            summary[f"{ours}_series_le_5s"] = med[ours][1] <= 5.0
        emit(summary)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
