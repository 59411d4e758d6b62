"""Runs the loader over many (mutated) files in worker subprocesses and tallies the outcomes.

Each worker (``fuzz_worker.py``) loads many files, one at a time; the runner gives each file
``timeout`` seconds: a file that takes longer is a hang (the worker is killed and a new one
continues with the next file), a worker that dies is a crash of the file it was loading. The
loader's memory budget is set for the workers (``MEDVIEWER_LOAD_MEMORY_MB``) and each worker
caps its address space at budget + ``CAP_SLACK_MB``; a load whose peak resident memory grows
by more than the budget is counted as over budget.

Command line (prints the table and one JSON line)::

    python tests/unit/io/fuzz_run.py --count 4000 --seed 13          # generated mutants
    python tests/unit/io/fuzz_run.py --inputs DIR_OR_FILES...        # anyone's files

With ``--inputs``, every file directly inside a given folder is one input, and every
sub-folder is one input (a series); a file given directly is one input.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
WORKER = HERE / "fuzz_worker.py"
CAP_SLACK_MB = 768  # address space beyond the budget: libraries' own arenas, thread stacks
READY_TIMEOUT = 180.0


@dataclass
class Outcome:
    path: str
    status: str  # ok, error, other, memory, bad, hang, crash
    msg: str = ""
    peak_mb: float = 0.0
    seconds: float = 0.0


@dataclass
class Report:
    outcomes: list = field(default_factory=list)
    budget_mb: int = 0
    wall_s: float = 0.0

    def counts(self) -> dict:
        c = Counter(o.status for o in self.outcomes)
        over = [o for o in self.outcomes if o.peak_mb > self.budget_mb or o.status == "memory"]
        return {"inputs": len(self.outcomes), "clean_loads": c["ok"],
                "clear_errors": c["error"], "other_exceptions": c["other"] + c["bad"],
                "hangs": c["hang"], "crashes": c["crash"], "over_budget": len(over),
                "max_peak_mb": round(max((o.peak_mb for o in self.outcomes), default=0.0), 1),
                "budget_mb": self.budget_mb, "wall_s": round(self.wall_s, 1)}

    def failures(self) -> list:
        return [o for o in self.outcomes
                if o.status in ("other", "bad", "hang", "crash", "memory")
                or o.peak_mb > self.budget_mb]

    def table(self) -> str:
        c = self.counts()
        rows = [("inputs tried", c["inputs"]), ("clean loads", c["clean_loads"]),
                ("clear errors (LoadError)", c["clear_errors"]),
                ("other exceptions / bad volumes", c["other_exceptions"]),
                ("hangs (> timeout)", c["hangs"]), ("crashes", c["crashes"]),
                (f"peak memory over budget ({c['budget_mb']} MB)", c["over_budget"]),
                ("largest peak of one load (MB)", c["max_peak_mb"])]
        w = max(len(r[0]) for r in rows)
        return "\n".join(f"| {k:<{w}} | {v:>8} |" for k, v in rows)


class _Worker:
    def __init__(self, env: dict, cap_mb: int, script: Path = WORKER):
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(cap_mb)], cwd=REPO, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._stderr: list = []
        self._buf = b""
        threading.Thread(target=self._drain, daemon=True).start()
        msg = self.read(READY_TIMEOUT)
        if not msg or not msg.get("ready"):
            self.kill()
            raise RuntimeError("fuzz worker did not start: " + self.stderr_tail())

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))
            del self._stderr[:-40]

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-600:]

    def read(self, timeout: float):
        """The next JSON line, None on EOF, "timeout" when none came in time."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                try:
                    return json.loads(line)
                except ValueError:
                    continue  # a library printing to stdout
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buf += chunk

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _worker_env(budget_mb: int) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), MEDVIEWER_LOAD_MEMORY_MB=str(budget_mb),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1", PYTHONWARNINGS="ignore",
               # workers start often (after each hang or crash): let them cache bytecode
               PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "medviewer-fuzz-pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run_queue(queue: list, lock: threading.Lock, results: dict, env: dict, cap_mb: int,
               timeout: float, script: Path) -> None:
    worker = None
    while True:
        with lock:
            if not queue:
                break
            i, path = queue.pop()
        if worker is None or worker.proc.poll() is not None:
            worker = _Worker(env, cap_mb, script)
        worker.proc.stdin.write((json.dumps({"i": i, "path": path}) + "\n").encode())
        worker.proc.stdin.flush()
        started = worker.read(timeout * 3)
        done = worker.read(timeout) if isinstance(started, dict) else started
        if isinstance(done, dict) and done.get("done") == i:
            results[i] = Outcome(path, done["status"], done.get("msg", ""),
                                 float(done.get("peak_mb", 0.0)), float(done.get("seconds", 0)))
            continue
        if done == "timeout":
            worker.kill()
            results[i] = Outcome(path, "hang", f"no result within {timeout:g} s", 0.0, timeout)
        else:
            worker.kill()
            results[i] = Outcome(path, "crash", f"worker exited with {worker.proc.returncode}: "
                                 f"{worker.stderr_tail()}")
        worker = None
    if worker is not None:
        worker.proc.stdin.close()
        worker.kill()


def run_files(paths: list, budget_mb: int = 1024, timeout: float = 10.0,
              workers: int = 2, script: Path = WORKER) -> Report:
    """Load every path (file or series folder) in ``workers`` subprocesses running
    ``script`` (the loader's worker; tests of this runner give a stand-in)."""
    env = _worker_env(budget_mb)
    cap_mb = budget_mb + CAP_SLACK_MB
    queue = [(i, str(p)) for i, p in enumerate(paths)][::-1]
    results: dict = {}
    lock = threading.Lock()
    t0 = time.monotonic()
    threads = [threading.Thread(target=_run_queue, args=(queue, lock, results, env, cap_mb,
                                                         timeout, script))
               for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = Report([results[i] for i in sorted(results)], budget_mb, time.monotonic() - t0)
    return report


def inputs_of(args: list) -> list:
    out = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out.extend(sorted(p.iterdir()))
        else:
            out.append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300, help="generated mutants (default 300)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--inputs", nargs="+", metavar="PATH", help="load these instead")
    ap.add_argument("--budget-mb", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", metavar="DIR", help="write the mutants here (kept)")
    ap.add_argument("--show", type=int, default=20, help="failures to list")
    args = ap.parse_args(argv)
    tmp = None
    if args.inputs:
        paths = inputs_of(args.inputs)
    else:
        sys.path.insert(0, str(HERE))
        from fuzz_mutants import write_mutants

        folder = args.keep or (tmp := tempfile.TemporaryDirectory(prefix="medviewer-fuzz-")).name
        paths = [m[0] for m in write_mutants(folder, args.count, args.seed)]
    try:
        report = run_files(paths, args.budget_mb, args.timeout, args.workers)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(report.table())
    for o in report.failures()[:args.show]:
        print(f"FAIL {o.status} {Path(o.path).name} peak {o.peak_mb:.0f} MB: {o.msg[:400]}")
    print(json.dumps(report.counts()))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
