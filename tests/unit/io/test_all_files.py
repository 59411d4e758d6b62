"""Every real file is accounted for (series, non-image or skipped with a reason) and every
series either loads or raises LoadError; run in a subprocess so a decoder crash fails the test."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _dicom_data import DATA

SCRIPT = textwrap.dedent("""
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    from pydicom.data import get_testdata_files
    from medviewer.io.discover import scan_paths
    from medviewer.io.load import LoadError, load_series
    data = sys.argv[1]
    inputs = [data] if os.path.isdir(data) else []
    inputs += [p for p in get_testdata_files() if os.path.isfile(p)]
    expected = set()
    for root in inputs:
        if os.path.isdir(root):
            for d, _, names in os.walk(root):
                expected.update(os.path.join(d, n) for n in names)
        else:
            expected.add(root)
    cat = scan_paths(inputs)
    accounted = {}
    for e in cat.series:
        for p in e.paths:
            accounted[p] = "series"
    for o in cat.non_image:
        accounted[o.path] = "non_image:" + o.kind
    bad_reasons = [s.path for s in cat.skipped if not s.reason.strip()]
    for s in cat.skipped:
        accounted[s.path] = "skipped"
    results = []
    for e in cat.series:
        try:
            v = load_series(e)
            results.append(["ok", e.key, list(v.array.shape)])
        except LoadError as exc:
            results.append(["LoadError", e.key, str(exc)])
        except Exception as exc:
            results.append(["CRASH", e.key, f"{type(exc).__name__}: {exc}"])
    missing = sorted(p for p in expected if os.path.abspath(p) not in
                     {os.path.abspath(a) for a in accounted})
    print(json.dumps({"missing": missing, "bad_reasons": bad_reasons, "results": results,
                      "n_files": len(expected)}))
""")


@pytest.mark.slow
def test_every_file_accounted_for_and_nothing_crashes():
    repo = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(DATA)], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n_files"] > 300
    assert out["missing"] == []
    assert out["bad_reasons"] == []
    crashes = [r for r in out["results"] if r[0] == "CRASH"]
    assert crashes == []
    errors = [r for r in out["results"] if r[0] == "LoadError"]
    assert all(r[2].strip() for r in errors)
    loaded = [r for r in out["results"] if r[0] == "ok"]
    assert len(loaded) > 50
