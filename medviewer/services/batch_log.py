"""The shared state of a batch run in its output folder, safe for many processes on one or
several machines (a shared file system with POSIX locks: local disks, NFSv4, Lustre mounted
with ``flock``, GPFS, BeeGFS):

- :class:`BatchLock`: ``.batch.lock``, one file of POSIX record locks. A process *claims* a
  study by locking one byte at an offset drawn from the study id (never blocking: a taken
  study is someone else's), and appends to the summary while holding byte 0. The kernel
  (or the NFS lock manager) drops every lock of a process that dies, even by SIGKILL, so a
  killed run leaves no stale claim behind.
- :class:`SummaryLog`: ``summary.jsonl``, append-only, one JSON line per study attempt.
  Each line is one ``write`` of the whole line under the summary lock, then fsync; a line
  torn by a crash (no newline at the end) is fenced off by the next writer with a newline
  and skipped by readers. Readers keep their offset and read only what is new, opening the
  file afresh each time (NFS close-to-open consistency).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Iterator, Optional

try:  # POSIX record locks; elsewhere one process per output folder
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["BatchLockError", "BatchLock", "SummaryLog", "LOCK_FILE", "SUMMARY_FILE"]

LOCK_FILE = ".batch.lock"
SUMMARY_FILE = "summary.jsonl"
_CLAIM_SPACE = (1 << 60) - 1  # byte offsets for claims: 1 .. 2**60 (0 is the summary's)


class BatchLockError(OSError):
    """The output folder's file system cannot lock files (e.g. NFS without a lock manager)."""


def _claim_offset(study_id: str) -> int:
    return 1 + (int(study_id[:15], 16) & _CLAIM_SPACE)


class BatchLock:
    """The claims and the summary lock of one output folder, for this process. POSIX locks
    belong to the process and all of them go when any descriptor of the file is closed, so
    the file is opened once here and kept open until :meth:`close`."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        self.held: set = set()
        if fcntl is not None:
            try:  # fail now, clearly, rather than on the first study
                fcntl.lockf(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 0)
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):  # a writer holds it: fine
                    return
                self.close()
                raise BatchLockError(exc.errno, f"cannot lock files in {folder} ({exc.strerror}); "
                                     "use an output folder on a file system with POSIX locks")

    def claim(self, study_id: str, wait: bool = False) -> bool:
        """Take ``study_id`` for this process: True when taken, False when another process
        holds it (``wait``: block until it lets go)."""
        if fcntl is not None:
            flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.lockf(self._fd, flags, 1, _claim_offset(study_id))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return False
                raise
        self.held.add(study_id)
        return True

    def release(self, study_id: str) -> None:
        if study_id in self.held:
            if fcntl is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _claim_offset(study_id))
            self.held.discard(study_id)

    @contextlib.contextmanager
    def summary(self) -> Iterator[None]:
        """Hold the summary lock (blocking) for an append."""
        if fcntl is None:
            yield
            return
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, 0)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops every lock this process holds on the file
            self._fd = None
            self.held.clear()


class SummaryLog:
    """``summary.jsonl``: what every process did, read incrementally. ``latest[study_id]`` is
    the study's last line; ``ran_by[run_id]`` the studies that run attempted."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.latest: dict = {}
        self.ran_by: dict = {}
        self.bad_lines = 0  # torn or foreign lines skipped
        self._offset = 0

    def refresh(self) -> "SummaryLog":
        """Read the lines appended since the last refresh (complete lines only)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return self
        end = data.rfind(b"\n") + 1  # a line still being written (or torn) waits
        for raw in data[:end].splitlines():
            self._take(raw)
        self._offset += end
        return self

    def _take(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            rec = json.loads(raw)
            sid = rec["study_id"]
        except (ValueError, KeyError, TypeError):
            self.bad_lines += 1
            return
        self.latest[sid] = rec
        self.ran_by.setdefault(rec.get("run"), set()).add(sid)

    def append(self, record: dict, lock: BatchLock) -> None:
        """Append one line durably: one write under the summary lock, then fsync."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with lock.summary():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # fence off a line torn by a crash
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
