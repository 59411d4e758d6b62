"""The shared state of a batch output folder: the summary log survives torn lines, and study
claims are real POSIX locks between processes that a SIGKILL releases."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.services.batch_log import BatchLock, SummaryLog

REPO = Path(__file__).resolve().parents[3]


def _rec(sid, status="ok", run="r1"):
    return {"study_id": sid, "status": status, "run": run}


def test_a_torn_last_line_is_skipped_and_fenced_off_by_the_next_append(tmp_path):
    path = tmp_path / "summary.jsonl"
    good = "".join(json.dumps(_rec(s)) + "\n" for s in ("a" * 16, "b" * 16))
    path.write_text(good + '{"study_id": "cccccccccccccccc", "sta')  # killed mid-write
    log = SummaryLog(path).refresh()
    assert sorted(log.latest) == ["a" * 16, "b" * 16] and log.bad_lines == 0
    lock = BatchLock(tmp_path)
    try:
        SummaryLog(path).append(_rec("d" * 16, "failed", "r2"), lock)
    finally:
        lock.close()
    lines = path.read_text().splitlines()
    assert lines[2] == '{"study_id": "cccccccccccccccc", "sta'  # fenced: its own line
    assert json.loads(lines[3])["study_id"] == "d" * 16
    log.refresh()  # incremental: reads only what is new
    assert log.bad_lines == 1 and log.latest["d" * 16]["status"] == "failed"
    assert log.ran_by == {"r1": {"a" * 16, "b" * 16}, "r2": {"d" * 16}}
    fresh = SummaryLog(path).refresh()
    assert fresh.latest == log.latest and fresh.bad_lines == 1


def test_a_line_still_being_written_waits_for_its_newline(tmp_path):
    path = tmp_path / "summary.jsonl"
    line = json.dumps(_rec("e" * 16))
    path.write_text(line[:20])
    log = SummaryLog(path).refresh()
    assert log.latest == {}
    with open(path, "a") as fh:
        fh.write(line[20:] + "\n")
    assert list(log.refresh().latest) == ["e" * 16] and log.bad_lines == 0


_HOLDER = """
import sys, time
from pathlib import Path
from medviewer.services.batch_log import BatchLock
lock = BatchLock(Path(sys.argv[1]))
assert lock.claim(sys.argv[2])
print("held", flush=True)
time.sleep(120)
"""


def test_a_claim_excludes_other_processes_until_its_holder_is_killed(tmp_path):
    sid, other = "0123456789abcdef", "fedcba9876543210"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), sid], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = BatchLock(tmp_path)
        try:
            assert lock.claim(sid) is False  # another process holds it
            assert lock.claim(other) is True  # a different study is free
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=30)
            assert lock.claim(sid, wait=True) is True  # the kernel dropped the dead claim
            lock.release(sid)
            assert sid not in lock.held
        finally:
            lock.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_the_summary_lock_serialises_writers_of_many_processes(tmp_path):
    code = ("import sys\nfrom pathlib import Path\n"
            "from medviewer.services.batch_log import BatchLock, SummaryLog\n"
            "lock = BatchLock(Path(sys.argv[1]))\nlog = SummaryLog(Path(sys.argv[1]) / 's.jsonl')\n"
            "for i in range(200):\n"
            "    log.append({'study_id': f'{sys.argv[2]}{i:015d}', 'pad': 'x' * 3000}, lock)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(k)], env=env)
             for k in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    log = SummaryLog(tmp_path / "s.jsonl").refresh()
    assert log.bad_lines == 0 and len(log.latest) == 600


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks")
def test_a_lock_file_is_opened_once_so_no_close_drops_the_claims(tmp_path):
    lock = BatchLock(tmp_path)
    try:
        assert lock.claim("1" * 16)
        SummaryLog(tmp_path / "s.jsonl").append(_rec("1" * 16), lock)  # opens other files only
        code = ("import sys\nfrom pathlib import Path\nfrom medviewer.services.batch_log "
                "import BatchLock\nprint(BatchLock(Path(sys.argv[1])).claim('1' * 16))")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                             text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
        assert out.stdout.strip() == "False", out.stderr
    finally:
        lock.close()
