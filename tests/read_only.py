"""Make a folder read-only in a test, also when the tests run as root (which chmod does not
stop): the immutable attribute then (``chattr +i``)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest


def _chattr(flag: str, paths) -> bool:
    exe = shutil.which("chattr")
    if exe is None:
        return False
    res = subprocess.run([exe, flag] + [str(p) for p in paths], capture_output=True)
    return res.returncode == 0


def make_read_only(folder: Path) -> list:
    """Make ``folder`` and everything in it read-only: chmod a-w, and for root (which
    chmod does not stop) the immutable attribute (stricter: open files are refused too).
    Returns what ``make_writable`` undoes; fails the test when the folder cannot be made
    read-only here."""
    paths = [folder] + sorted(folder.rglob("*"))
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    immutable = []
    if os.geteuid() == 0:
        # not SQLite's shared-memory index: a live connection has it mapped, and an immutable
        # mapped file raises SIGBUS, which no chmod does (a mapping keeps its rights)
        paths = [p for p in paths if not p.name.endswith("-shm")]
        if not _chattr("+i", paths):
            make_writable(folder, [])
            pytest.fail("running as root without chattr +i: cannot make a folder read-only")
        immutable = paths
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return immutable
    probe.unlink()
    make_writable(folder, immutable)
    pytest.fail("the folder is still writable after chmod/chattr")


def make_writable(folder: Path, immutable: list) -> None:
    if immutable:
        _chattr("-i", immutable)
    for p in [folder] + sorted(folder.rglob("*")):
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
