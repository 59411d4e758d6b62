"""The retrieve cache: ``ROOT/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``, each instance written
atomically the moment it arrives (a crash or a stopped server leaves only whole files), so a
retrieve can resume: what is there already is not fetched again.

Writes skip fsync (``atomic_open(durable=False)``): the cache can be fetched again, and two
fsyncs per instance doubled a series' retrieve. A power loss can therefore leave an empty or
short file under its final name, so an instance counts as cached only when it looks whole
(a Part-10 preamble and ``DICM`` at least); anything else is fetched again."""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Set

from medviewer.core.atomic import atomic_open, is_temp_name

from .common import RetrieveResult

__all__ = ["InstanceSink", "safe_name", "cached_uids", "looks_whole"]

_UID = re.compile(r"^[0-9.]{1,64}$")


def safe_name(uid: str) -> str:
    """A file-system name for a UID (a UID as it is; anything else hashed)."""
    uid = (uid or "").strip().rstrip("\x00")
    if _UID.match(uid) and not uid.startswith("."):
        return uid
    return "x" + hashlib.sha1(uid.encode("utf-8", "replace")).hexdigest()[:24]


def looks_whole(path: Path) -> bool:
    """A cached file that a power loss did not cut short: longer than the Part-10 header and
    with ``DICM`` after its 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
            fh.seek(0, os.SEEK_END)
            return len(head) == 132 and head[128:] == b"DICM" and fh.tell() > 256
    except OSError:
        return False


def cached_uids(folder: Path) -> Set[str]:
    """The file stems (SOP Instance UIDs) of the whole instances in ``folder``."""
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.dcm") if not is_temp_name(p.name) and looks_whole(p)}


class InstanceSink:
    """Writes arriving instances into the cache (thread-safe: a storage SCP calls it from its
    own threads), counts them and reports progress."""

    def __init__(self, root: str | os.PathLike, progress: Optional[Callable] = None,
                 on_instance: Optional[Callable[[str], None]] = None,
                 expected: Optional[int] = None, series_uid: str = ""):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.on_instance = on_instance
        self.expected = expected
        self.series_uid = series_uid  # the folder for instances whose series is not known
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self.result = RetrieveResult(folder=str(self.root), expected=expected)
        self._seen: Set[str] = set()

    def folder_for(self, series_uid: str) -> Path:
        return self.root / safe_name(series_uid or self.series_uid or "unknown")

    def exists(self, series_uid: str, sop_uid: str) -> bool:
        return looks_whole(self.folder_for(series_uid) / f"{safe_name(sop_uid)}.dcm")

    def note_existing(self, series_uid: str, sop_uids: Iterable[str]) -> int:
        """Count instances already in the cache as part of this retrieve; returns how many."""
        folder = self.folder_for(series_uid)
        n = 0
        with self._lock:
            for uid in sop_uids:
                path = folder / f"{safe_name(uid)}.dcm"
                if looks_whole(path) and str(path) not in self._seen:
                    self._seen.add(str(path))
                    self.result.paths.append(str(path))
                    self.result.already_there += 1
                    n += 1
        return n

    def write(self, series_uid: str, sop_uid: str, data: bytes) -> str:
        """Write one encoded Part-10 file atomically; returns its path."""
        path = self.folder_for(series_uid) / f"{safe_name(sop_uid)}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, durable=False) as fh:
            fh.write(data)
        with self._lock:
            if self.result.first_arrival_s is None:
                self.result.first_arrival_s = time.perf_counter() - self._t0
            if str(path) not in self._seen:
                self._seen.add(str(path))
                self.result.paths.append(str(path))
            self.result.arrived += 1
            done = len(self.result.paths)
        if self.on_instance is not None:
            self.on_instance(str(path))
        if self.progress is not None:
            total = self.expected or 0
            self.progress(done, max(total, done), f"{done} of {total or '?'} instances")
        return str(path)

    def set_expected(self, n: Optional[int]) -> None:
        if n is not None:
            self.expected = n
            self.result.expected = n

    def paths(self) -> List[str]:
        with self._lock:
            return list(self.result.paths)
