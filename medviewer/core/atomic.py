"""Atomic, durable file writes: temp file in the same folder, fsync, os.replace, fsync the folder.

The one implementation every writer uses (label store, NIfTI/NRRD/SEG export, screenshots).
stdlib only, so it sits in core below io and storage. A reader (or a crash at any instant)
sees either the complete old file or the complete new one, never a half-written file under
the final name. A crash mid-write can leave a stray temporary file
(``.<name>.<random>.tmp[<suffix>]``) beside the target; it never replaces anything. New files
get the usual permissions (0666 minus the umask), not mkstemp's private 0600.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

TMP_SUFFIX = ".tmp"


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename/creation in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    """True for the temporary names that :func:`atomic_open` / :func:`atomic_path` use."""
    return name.startswith(".") and (name.endswith(TMP_SUFFIX) or TMP_SUFFIX + "." in name)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _finish(tmp: str, target: Path) -> None:
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, target)
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` for libraries that write by file name (nibabel,
    SimpleITK, pydicom); on a clean exit the file is fsync'ed and atomically becomes ``path``.

    ``suffix`` ends the temporary name (e.g. ``.nii.gz``) so the library picks the format.
    On an exception the temporary file is removed and ``path`` is untouched. ``durable=False``
    skips the fsyncs (still atomic for readers and crashes of the process, but a power loss
    may leave an empty file): for caches whose reader checks what it finds and can fetch it
    again (the PACS cache: two fsyncs per instance doubled a 100-instance retrieve)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX + suffix,
                               dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            _finish(tmp, target)
        else:
            os.chmod(tmp, _umask_mode())
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it atomically becomes ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError("atomic_open supports 'wb' and 'w' only")
    kwargs = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
    with atomic_path(path, durable=durable) as tmp:  # fsync, rename and clean-up live there
        with open(tmp, mode, **kwargs) as fh:
            yield fh


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)
