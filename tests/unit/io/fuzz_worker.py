"""Loads the files named on stdin, one per line, the way the viewer and `medviewer info` do.

Run by ``fuzz_run`` in a subprocess: a crash or hang is attributed to the file named in the
last ``start`` line. For each file it prints ``{"start": i}`` before and one result line
after (status, message, peak memory of that load, seconds). Statuses:

- ``ok``: every series loaded, with finite geometry, a finite default window and a record
  that ``json.dumps(..., allow_nan=False)`` accepts (what ``medviewer info --json`` prints);
- ``error``: the project's own ``LoadError`` (or the scan skipped the file with a reason);
- ``memory``: a MemoryError (directly or as the cause of a LoadError): something allocated
  past the address-space cap, i.e. sized from header values without the budget check;
- ``other``: any other exception (type and message kept);
- ``bad``: loaded, but a non-finite geometry or window, or a record that is not valid JSON.

The worker caps its own address space (RLIMIT_AS) at its size after the imports plus the
``--cap-mb`` argument, so a runaway allocation fails here instead of eating the machine;
the peak is measured per load (VmHWM, reset through /proc/self/clear_refs before each load).
"""
from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
import traceback
import warnings


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _check_volume(vol, entry) -> str:
    """'' when the volume is sane, else what is wrong with it."""
    from medviewer.cli.info import _series_record

    g = vol.geometry
    nums = list(g.spacing) + list(g.origin) + list(g.direction) + list(g.slice_offsets or ())
    if not all(math.isfinite(v) for v in nums):
        return f"non-finite geometry {g.spacing} {g.origin}"
    w = vol.default_window()
    if not (math.isfinite(w.center) and math.isfinite(w.width) and w.width > 0):
        return f"non-finite window {w}"
    try:
        json.dumps(_series_record(0, entry, vol), allow_nan=False)
    except (ValueError, TypeError) as exc:
        return f"info --json would fail: {exc}"
    return ""


def load_one(path: str) -> tuple:
    from medviewer.io.load import LoadError
    from medviewer.services.studies import load, scan

    cat = scan([path])
    loaded, errors = 0, []
    for entry in cat.series:
        try:
            vol = load(entry)
        except LoadError as exc:
            errors.append(str(exc))
            continue
        bad = _check_volume(vol, entry)
        del vol
        if bad:
            return "bad", bad
        loaded += 1
    if loaded and not errors and not cat.skipped:
        return "ok", ""
    why = errors + [s.reason for s in cat.skipped] + [f"non-image: {n.kind}" for n in cat.non_image]
    if not why:
        why = ["nothing found"]
    if any(not w.strip() for w in why):
        return "bad", "empty error message"
    return ("ok" if loaded and not errors else "error"), why[0][:300]


def main() -> int:
    cap_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)
    # import every reader up front: the first file must not pay for imports
    import nibabel  # noqa: F401
    import numpy  # noqa: F401
    import pydicom.pixels  # noqa: F401
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    from medviewer.cli import info  # noqa: F401
    from medviewer.io import dicom_reader, volume_files  # noqa: F401
    from medviewer.io.load import LoadError
    for mod in ("rle", "libjpeg", "openjpeg", "jpeg_ls"):
        try:
            __import__(mod)
        except ImportError:
            pass
    if cap_mb:
        limit = _status_kb("VmSize") * 1024 + cap_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    can_reset = _reset_peak()
    print(json.dumps({"ready": True, "peak_reset": can_reset}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        i, path = req["i"], req["path"]
        print(json.dumps({"start": i}), flush=True)
        rss0 = _status_kb("VmRSS")
        _reset_peak()
        t0 = time.monotonic()
        try:
            status, msg = load_one(path)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001  anything that is not ours is a finding
            chain = list(_chain(exc))
            if any(isinstance(e, MemoryError) for e in chain):
                status = "memory"
            elif isinstance(exc, LoadError):
                status = "error"
            else:
                status = "other"
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            msg = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}"
            if status != "error":
                msg += " | " + "".join(tb[-3:])[-800:]
        seconds = time.monotonic() - t0
        peak_kb = max(0, _status_kb("VmHWM") - rss0)
        print(json.dumps({"done": i, "status": status, "msg": msg, "peak_mb": peak_kb / 1024,
                          "seconds": round(seconds, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
