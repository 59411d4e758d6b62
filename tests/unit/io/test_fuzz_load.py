"""Fuzz test of the loader: mutants of the shared real files (DICOM of every transfer syntax,
multi-frame, series, NIfTI, NRRD), generated at test time with a fixed seed, each loaded in
a worker subprocess (``fuzz_run``) the way the viewer and `medviewer info` load them.

Fails on any exception other than LoadError, a volume with non-finite geometry or window,
a load taking more than 10 s, a crashed worker, or a load whose peak memory exceeds the
loader's budget (set to 1 GB for the workers, whose address space is capped too).
The table for the issue: ``python tests/unit/io/fuzz_run.py --count 4000 --seed 13``."""
import textwrap

import pytest

from fuzz_mutants import write_mutants
from fuzz_run import run_files

BUDGET_MB = 1024


def _fuzz(tmp_path, count: int, seed: int) -> None:
    paths = [m[0] for m in write_mutants(tmp_path / "mutants", count, seed)]
    report = run_files(paths, budget_mb=BUDGET_MB, timeout=10.0, workers=2)
    print(report.table())
    c = report.counts()
    assert c["inputs"] == count
    bad = [f"{o.status} {o.path.rsplit('/', 1)[-1]} peak {o.peak_mb:.0f} MB: {o.msg[:300]}"
           for o in report.failures()]
    assert not bad, "\n".join(bad[:20])
    # the mutants are neither all harmless nor all rejected at the first byte
    assert c["clean_loads"] > count // 10 and c["clear_errors"] > count // 5, c


def test_fuzz_fast_tier(tmp_path):
    _fuzz(tmp_path, 300, seed=13)


@pytest.mark.slow
def test_fuzz_thousands(tmp_path):
    _fuzz(tmp_path, 3000, seed=2013)


FAKE_WORKER = textwrap.dedent('''
    import json, os, sys, time
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        print(json.dumps({"start": req["i"]}), flush=True)
        name = os.path.basename(req["path"])
        if name.startswith("hang"):
            time.sleep(60)
        if name.startswith("crash"):
            os.abort()
        status = {"other": "other", "memory": "memory"}.get(name.split("_")[0], "ok")
        peak = 5000.0 if name.startswith("big") else 10.0
        print(json.dumps({"done": req["i"], "status": status, "msg": name, "peak_mb": peak}),
              flush=True)
''')


def test_runner_attributes_hangs_crashes_and_memory_to_the_right_file(tmp_path):
    """The harness itself: a stand-in worker that hangs, aborts, raises or grows on chosen
    names; each outcome lands on that file and the files after it still run."""
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    names = ["a", "hang_1", "b", "crash_1", "c", "other_1", "big_1", "memory_1", "d"]
    report = run_files([tmp_path / n for n in names], budget_mb=1024, timeout=2.0,
                       workers=1, script=script)
    got = {o.path.rsplit("/", 1)[-1]: o.status for o in report.outcomes}
    assert got == {"a": "ok", "hang_1": "hang", "b": "ok", "crash_1": "crash", "c": "ok",
                   "other_1": "other", "big_1": "ok", "memory_1": "memory", "d": "ok"}
    c = report.counts()
    assert (c["hangs"], c["crashes"], c["other_exceptions"], c["over_budget"]) == (1, 1, 1, 2)
    assert "-6" in next(o.msg for o in report.outcomes if o.status == "crash")  # SIGABRT
    assert sorted(o.path.rsplit("/", 1)[-1] for o in report.failures()) == \
        ["big_1", "crash_1", "hang_1", "memory_1", "other_1"]
