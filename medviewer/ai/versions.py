"""Model versions in the user models folder: the active pointer, promote / rollback, new versions.

Layout: ``<user_dir>/<name>/<version>/`` (never overwritten) and the pointer file
``<user_dir>/<name>/active.json`` = ``{"version": "1.1.0", "history": [{"version", "at",
"action": "promote"|"rollback"|"create", "reason", "previous"}]}`` (written atomically;
``previous`` is the version that was active before the action, ``null`` when none was known;
"create": a new model's untrained version, see :func:`point_at_new_model`). The pointer may
name a built-in version too. An untrained version is never promoted nor rolled back to.
Without a pointer the active version is the highest built-in one, else the highest (see
:meth:`ModelRegistry.get`). A new version is assembled in a hidden
``<user_dir>/<name>/.staging-<uuid>/`` folder (the registry ignores hidden folders; its name
says nothing of the version) and appears under its version name with one ``os.rename``, so a
cancelled or crashed run never leaves a half-written version behind. A fine-tune takes its
version number only then (:func:`commit_new_version`): under the model's exclusive lock it takes
the next free number, writes the files that name it into the staging folder and renames the
folder into place, so runs started together commit as different versions. A staging folder
records its owner (host, pid, process start); :func:`clean_staging` removes those whose owner
is gone (a killed run) at the next run's start and never touches a live run's.
Promote and rollback move the pointer only to a version whose weights load and give a finite
output of the right size on one small input (:func:`medviewer.ai.weights.check_runs`).
No torch import at module level.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Optional

from medviewer.ai.architectures import ModelError
from medviewer.ai.cards import ModelCard, parse_version
from medviewer.core.atomic import atomic_write_text, fsync_dir

__all__ = ["POINTER_FILE", "STAGING_PREFIX", "read_pointer", "active_version", "active_refs",
           "promote", "point_at_new_model", "untrained_error",
           "rollback", "history", "next_version", "staging_dir", "commit_version",
           "commit_new_version", "clean_staging", "StaleGate"]

POINTER_FILE = "active.json"
STAGING_PREFIX = ".staging-"
_LOCK_FILE = ".active.lock"
_OWNER_FILE = ".owner"  # JSON {host, pid, started} of the process that made a staging folder
_COMMIT_TRIES = 100  # versions that appeared without the lock (no flock, an import) are skipped


class StaleGate(ModelError):
    """The active version changed after a run's gate compared its candidate with it."""


def _model_dir(registry, name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or name in (".", ".."):
        raise ModelError(f"not a model name: {name!r}")
    return Path(registry.user_dir) / name


def read_pointer(user_dir, name: str) -> dict:
    """The pointer object of model ``name`` under ``user_dir``; ``{}`` when there is none.

    An unreadable or malformed pointer file counts as none (so the app and the CLI keep working
    on the default version); the next promote/rollback writes a fresh one."""
    path = Path(user_dir) / name / POINTER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        return {}
    try:
        parse_version(data["version"])
    except ModelError:
        return {}
    hist = data.get("history")
    data["history"] = [h for h in hist if isinstance(h, dict)] if isinstance(hist, list) else []
    return data


def _cards(registry, name: str) -> list:
    return [c for c in registry.list() if c.name == name]


def _default_version(cards: list, registry) -> Optional[str]:
    """What is active without a pointer: the highest built-in version, else the highest."""
    builtin = [c for c in cards if registry.is_builtin(c)]
    pick = builtin or cards
    return pick[-1].version if pick else None


def active_version(registry, name: str) -> Optional[str]:
    """The version the pointer names, or None when there is no (usable) pointer or the version
    it names no longer exists."""
    pointer = read_pointer(registry.user_dir, name)
    version = pointer.get("version")
    if version is None:
        return None
    key = parse_version(version)
    return version if any(c.version_key == key for c in _cards(registry, name)) else None


def active_refs(registry, cards=None) -> dict[str, str]:
    """``{name: "name:version"}`` of the version :meth:`ModelRegistry.get` picks for every
    model in ``cards`` (default: ``registry.list()``) — what runs when no version is given."""
    cards = registry.list() if cards is None else list(cards)
    out = {}
    for name in sorted({c.name for c in cards}):
        try:
            out[name] = registry.get(name).ref
        except ModelError:
            continue
    return out


def history(registry, name: str) -> list[dict]:
    """The pointer's history (oldest first); empty without a pointer."""
    return list(read_pointer(registry.user_dir, name).get("history", []))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise pointer updates of one model between processes (where flock exists)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: last writer wins, still atomic
        yield
        return
    with open(folder / _LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def untrained_error(card) -> ModelError:
    """The error for using an untrained version (``models new``) as if it were a model."""
    return ModelError(f"{card.ref} is untrained (made by 'medviewer models new'): it has never "
                      f"seen a labelled image. Train it first: medviewer finetune --workspace "
                      f"WORKSPACE --base {card.name} (its first version, 1.0.0, becomes active "
                      f"when it beats the trivial baseline on the frozen validation set)")


def _checked_card(registry, name: str, version: str, action: str = "promote") -> ModelCard:
    """The card of ``name:version`` if the pointer may name it: trained, its weights match their
    hash, load into its architecture and give a finite output of the card's size on one small
    input. ModelError naming the version and why not (the pointer is not touched)."""
    from medviewer.ai.weights import check_runs

    parse_version(version)
    card = registry.get(f"{name}:{version}")
    if card.untrained:
        raise untrained_error(card)
    try:
        check_runs(card)
    except ModelError as exc:
        why = str(exc)
        if why.startswith(f"{card.ref}: "):
            why = why[len(card.ref) + 2:]
        raise ModelError(f"refusing to {action} {card.ref}: {why} (the active version stays "
                         f"{_current(registry, name) or 'none'})") from None
    return card


def _set_active(registry, name: str, version: str, action: str, reason: str,
                current: Optional[str]) -> None:
    folder = _model_dir(registry, name)
    pointer = read_pointer(registry.user_dir, name)
    hist = list(pointer.get("history", []))
    hist.append({"version": version, "at": _now(), "action": action, "reason": str(reason),
                 "previous": current})
    text = json.dumps({"version": version, "history": hist}, indent=1) + "\n"
    atomic_write_text(folder / POINTER_FILE, text)


def _current(registry, name: str) -> Optional[str]:
    cards = _cards(registry, name)
    return active_version(registry, name) or _default_version(cards, registry)


def point_at_new_model(registry, name: str, version: str, reason: str = "") -> None:
    """The pointer of a model ``models new`` just made: its untrained version is active (there
    is no other), so the model's name refers to it (runs refuse it as untrained) until a
    fine-tuned version passes the gate. ModelError when the model has a pointer already."""
    with _locked(_model_dir(registry, name)):
        if read_pointer(registry.user_dir, name):
            raise ModelError(f"{name} has an active version already")
        _set_active(registry, name, version, "create", reason, None)


def promote(registry, name: str, version: str, reason: str = "",
            if_active: Optional[str] = None) -> None:
    """Make ``name:version`` the active version. It must exist and be trained, and its weights
    must match their hash, load and run (:func:`_checked_card`); ModelError otherwise, the
    pointer unchanged. Promoting the version that is already active changes nothing.
    ``if_active``: promote only while that version is still the active one (a fine-tune's gate
    compared its candidate with it); :class:`StaleGate` when another version became active."""
    _model_dir(registry, name)
    _checked_card(registry, name, version)
    with _locked(_model_dir(registry, name)):
        current = _current(registry, name)
        if active_version(registry, name) == version:
            return
        if if_active is not None and current != if_active:
            raise StaleGate(f"{name}:{version} was judged against {if_active}, but {current} "
                            f"became active meanwhile; compare the two and promote by hand "
                            f"(medviewer models promote {name} {version})")
        _set_active(registry, name, version, "promote", reason, current)


def rollback(registry, name: str, version: Optional[str] = None, reason: str = "") -> str:
    """Point ``name`` back at ``version`` (any existing, verified version), or with None at the
    version that was active before the current one. Returns the version now active; ModelError
    when there is nothing to roll back to."""
    folder = _model_dir(registry, name)
    with _locked(folder):
        current = _current(registry, name)
        if version is None:
            hist = read_pointer(registry.user_dir, name).get("history", [])
            version = hist[-1].get("previous") if hist else None
            if not version and len(hist) >= 2:
                version = hist[-2].get("version")
            if not version or version == current:
                raise ModelError(f"{name}: no previously active version to roll back to "
                                 f"(active: {current or 'none'})")
        _checked_card(registry, name, version, action="roll back to")
        if version == current and active_version(registry, name) == version:
            return version
        _set_active(registry, name, version, "rollback",
                    reason or f"rolled back from {current or 'none'}", current)
    return version


def _existing_versions(registry, name: str) -> list[tuple[int, int, int]]:
    """Every version of ``name`` in both roots: valid cards and version-named folders (a
    refused folder still blocks its name)."""
    found = {c.version_key for c in _cards(registry, name)}
    for root in (registry.builtin_dir, registry.user_dir):
        folder = Path(root) / name
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if child.is_dir() and not child.name.startswith("."):
                try:
                    found.add(parse_version(child.name))
                except ModelError:
                    pass
    return sorted(found)


def next_version(registry, name: str, base_version: str) -> str:
    """The version for a model fine-tuned from ``base_version``: a minor bump past every
    existing version of ``name`` (1.0.0 -> 1.1.0 -> 1.2.0; with a 2.0.0 present -> 2.1.0). The
    first version trained from a new model's 0.0.0 (``models new``) is 1.0.0."""
    top = max([parse_version(base_version)] + _existing_versions(registry, name))
    if parse_version(base_version) == (0, 0, 0) and top[0] == 0:
        return "1.0.0"
    return f"{top[0]}.{top[1] + 1}.0"


def staging_dir(registry, name: str) -> Path:
    """A new, empty hidden folder ``<user_dir>/<name>/.staging-<uuid>`` to assemble a version in
    (its name does not depend on the version the run will get), owned by this process."""
    parent = _model_dir(registry, name)
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    path.mkdir()
    owner = {"host": socket.gethostname(), "pid": os.getpid(),
             "started": _process_start(os.getpid())}
    atomic_write_text(path / _OWNER_FILE, json.dumps(owner) + "\n")
    return path


def _process_start(pid: int, running: bool = False) -> Optional[str]:
    """When process ``pid`` started, as "<boot id>:<clock ticks since boot>" (Linux /proc), so
    a reused pid is told apart; None where the system does not say. ``running``: "" for a
    process that has exited but was not reaped yet (a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        fields = fields.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        ticks = fields[19]  # field 22, starttime
    except (OSError, IndexError):
        return None
    if running and fields[0] in ("Z", "X"):
        return ""
    return f"{boot}:{ticks}"


def _read_owner(staging: Path) -> Optional[tuple]:
    """(host, pid, started or None) of a staging folder's owner; None without a readable
    record. Also reads the older "<host> <pid>" line."""
    try:
        text = (staging / _OWNER_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        rec = json.loads(text)
        host, pid, started = rec["host"], int(rec["pid"]), rec.get("started")
    except (ValueError, TypeError, KeyError):
        try:
            host, pid_text = text.split()
            pid, started = int(pid_text), None
        except ValueError:
            return None
    if not isinstance(host, str) or pid <= 0:
        return None
    return host, pid, started if isinstance(started, str) else None


def _owner_state(staging: Path) -> str:
    """"alive": its owner runs, or runs on another host (which cannot be asked); "dead": its
    owner ran on this host and has exited (or the pid now belongs to a process started
    later); "unknown": no owner record."""
    owner = _read_owner(staging)
    if owner is None:
        return "unknown"
    host, pid, started = owner
    if host != socket.gethostname():
        return "alive"
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # runs, as another user
    except OSError:
        return "dead"
    now = _process_start(pid, running=True)
    if now == "" or (started is not None and now is not None and now != started):
        return "dead"  # exited (not reaped yet), or the pid was reused
    return "alive"


def _checked_staging(staging, registry, name: str) -> Path:
    staging = Path(staging)
    parent = _model_dir(registry, name)
    if (not staging.name.startswith(STAGING_PREFIX) or not staging.is_dir()
            or staging.parent.resolve() != parent.resolve()):
        raise ModelError(f"{staging} is not a staging folder of {name} in {parent}")
    return staging


def _rename_into_place(staging: Path, registry, name: str, version: str) -> Path:
    """Check the staged card is ``name:version`` and matches its weights, then rename the
    folder to ``<user_dir>/<name>/<version>``. FileExistsError when that version exists in
    either root (nothing is overwritten); ModelError for a bad card."""
    parent = _model_dir(registry, name)
    card = ModelCard.load(staging)
    if (card.name, card.version) != (name, version):
        raise ModelError(f"the staged card says {card.ref}, expected {name}:{version}")
    card.verify()
    target = parent / version
    if target.exists() or (Path(registry.builtin_dir) / name / version).exists():
        raise FileExistsError(str(target))
    owner = staging / _OWNER_FILE
    record = owner.read_bytes() if owner.is_file() else None
    owner.unlink(missing_ok=True)
    os.chmod(staging, 0o755)
    try:
        os.rename(staging, target)  # atomic; a non-empty folder that appeared meanwhile fails
    except OSError as exc:
        if record is not None:
            owner.write_bytes(record)  # still this run's staging folder
        if target.exists():
            raise FileExistsError(str(target)) from None
        raise ModelError(f"cannot move the new version into {target}: {exc}") from None
    fsync_dir(parent)
    return target


def commit_version(staging, registry, name: str, version: str) -> Path:
    """Move a complete staging folder to ``<user_dir>/<name>/<version>/`` with one rename.

    Refuses (ModelError, staging left as is) a folder that is not a staging folder of ``name``,
    a card that is not ``name:version`` or whose weights do not match their hash, and a version
    that already exists in either root."""
    staging = _checked_staging(staging, registry, name)
    parse_version(version)
    with _locked(_model_dir(registry, name)):
        try:
            return _rename_into_place(staging, registry, name, version)
        except FileExistsError:
            raise ModelError(f"{name}:{version} already exists; a model version is never "
                             f"overwritten") from None


def commit_new_version(staging, registry, name: str, base_version: str,
                       stamp: Callable[[str], None]) -> tuple[str, Path]:
    """Make a staged fine-tune a version, taking its number now: under the model's exclusive
    lock, :func:`next_version` past every version that exists at this moment, ``stamp(version)``
    writes the files that name the version (card, README, report) into ``staging``, and the
    folder is renamed into place. Returns (version, its folder). Two runs committing at once
    get two different versions; the weights are written before (outside the lock).
    ModelError (staging left as is) for a bad staging folder or card."""
    staging = _checked_staging(staging, registry, name)
    with _locked(_model_dir(registry, name)):
        for _ in range(_COMMIT_TRIES):
            version = next_version(registry, name, base_version)
            stamp(version)
            try:
                return version, _rename_into_place(staging, registry, name, version)
            except FileExistsError:  # made without the lock (an import, no flock): next one
                continue
    raise ModelError(f"{name}: no free version number found after {_COMMIT_TRIES} tries")


def clean_staging(registry, name: str, min_age_s: float = 3600) -> list[Path]:
    """Remove staging folders of ``name`` left by runs that died (a kill -9, a power cut): at
    once when the owner recorded in the folder ran on this host and is gone; a folder without
    an owner record once untouched for ``min_age_s`` seconds. A live owner's folder, and one
    whose owner ran on another host, are left alone. Returns the removed paths."""
    parent = _model_dir(registry, name)
    if not parent.is_dir():
        return []
    removed = []
    now = time.time()
    for child in parent.iterdir():
        if not (child.name.startswith(STAGING_PREFIX) and child.is_dir()):
            continue
        state = _owner_state(child)
        if state == "alive":
            continue
        if state == "unknown":
            try:
                if now - child.stat().st_mtime < min_age_s:
                    continue
            except OSError:
                continue
        shutil.rmtree(child, ignore_errors=True)
        if not child.exists():
            removed.append(child)
    return removed


# ---------------------------------------------------------------------------- what a version scores
_METRIC_KEYS = ("mean_dice", "accuracy", "auc")


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def headline_metric(card) -> Optional[tuple]:
    """(metric, value, split) a version is judged by: a fine-tuned version's frozen-validation
    result, else the card's validation block, else its headline metric and split."""
    m = card.metrics or {}
    fv = m.get("frozen_val")
    if isinstance(fv, dict) and _num(fv.get("value")):
        return str(fv.get("metric", "value")), float(fv["value"]), "frozen val"
    for block, split in ((m.get("validation"), "validation"), (m.get("val"), "val"),
                         (m, str(m.get("split", "")))):
        if isinstance(block, dict):
            for key in _METRIC_KEYS:
                if _num(block.get(key)):
                    return key, float(block[key]), split
    return None


def parent_on_same_val(card) -> Optional[float]:
    """A fine-tuned version's parent measured on the same frozen validation set (the run's
    baseline): the figure to compare with, since held-out sets differ between versions."""
    base = ((card.training or {}).get("baseline") or {}).get("value")
    return float(base) if _num(base) else None
