"""Atomic writes: all-or-nothing, and new files readable like any other (umask, not 0600)."""
import os
import stat

import pytest

from medviewer.core.atomic import atomic_open, atomic_path, is_temp_name


def test_atomic_path_gives_normal_permissions_and_library_suffix(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "out.nii.gz"
        with atomic_path(target, ".nii.gz") as tmp:
            assert tmp.name.endswith(".nii.gz") and is_temp_name(tmp.name)
            tmp.write_bytes(b"data")
        assert target.read_bytes() == b"data"
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        with atomic_open(tmp_path / "x.txt", "w") as fh:
            fh.write("hi")
        assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "labels.nrrd"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with atomic_path(target, ".nrrd") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.nrrd"]
