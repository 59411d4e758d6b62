"""Model versions in the user models folder: the active pointer, promote / rollback, new versions.

Layout: ``<user_dir>/<name>/<version>/`` (never overwritten) and the pointer file
``<user_dir>/<name>/active.json`` = ``{"version": "1.1.0", "history": [{"version", "at",
"action": "promote"|"rollback"|"create", "reason", "previous"}]}`` (written atomically;
``previous`` is the version that was active before the action, ``null`` when none was known;
"create": a new model's untrained version, see :func:`point_at_new_model`). The pointer may
name a built-in version too. An untrained version is never promoted nor rolled back to.
Without a pointer the active version is the highest built-in one, else the highest (see
:meth:`ModelRegistry.get`). A new version is assembled in a hidden
``<user_dir>/<name>/.staging-<uuid>/`` folder (the registry ignores hidden folders) and appears
under its version name with one ``os.rename`` (:func:`commit_version`), so a cancelled or crashed
run never leaves a half-written version behind. No torch import.
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
from typing import Iterator, Optional

from medviewer.ai.architectures import ModelError
from medviewer.ai.cards import ModelCard, parse_version
from medviewer.core.atomic import atomic_write_text, fsync_dir

__all__ = ["POINTER_FILE", "STAGING_PREFIX", "read_pointer", "active_version", "active_refs",
           "promote", "point_at_new_model", "untrained_error",
           "rollback", "history", "next_version", "staging_dir", "commit_version",
           "clean_staging"]

POINTER_FILE = "active.json"
STAGING_PREFIX = ".staging-"
_LOCK_FILE = ".active.lock"
_OWNER_FILE = ".owner"  # "<host> <pid>" of the process that made a staging folder


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


def _checked_card(registry, name: str, version: str) -> ModelCard:
    parse_version(version)
    card = registry.get(f"{name}:{version}")
    if card.untrained:
        raise untrained_error(card)
    card.verify()  # never point at weights that do not match their card
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


def promote(registry, name: str, version: str, reason: str = "") -> None:
    """Make ``name:version`` the active version (it must exist, be trained and its weights must
    match their hash; ModelError otherwise). Promoting the version that is already active
    changes nothing."""
    _model_dir(registry, name)
    _checked_card(registry, name, version)
    with _locked(_model_dir(registry, name)):
        current = _current(registry, name)
        if active_version(registry, name) == version:
            return
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
        _checked_card(registry, name, version)
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
    """A new, empty hidden folder ``<user_dir>/<name>/.staging-<uuid>`` to assemble a version in."""
    parent = _model_dir(registry, name)
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    path.mkdir()
    (path / _OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
    return path


def _owner_alive(staging: Path) -> bool:
    """True when the process that made ``staging`` still runs on this machine."""
    try:
        host, pid = (staging / _OWNER_FILE).read_text(encoding="utf-8").split()
        pid_n = int(pid)
    except (OSError, ValueError):
        return False
    if host != socket.gethostname() or pid_n <= 0:
        return False
    try:
        os.kill(pid_n, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def commit_version(staging, registry, name: str, version: str) -> Path:
    """Move a complete staging folder to ``<user_dir>/<name>/<version>/`` with one rename.

    Refuses (ModelError, staging left as is) a folder that is not a staging folder of ``name``,
    a card that is not ``name:version`` or whose weights do not match their hash, and a version
    that already exists in either root."""
    staging = Path(staging)
    parent = _model_dir(registry, name)
    parse_version(version)
    if (not staging.name.startswith(STAGING_PREFIX) or not staging.is_dir()
            or staging.parent.resolve() != parent.resolve()):
        raise ModelError(f"{staging} is not a staging folder of {name} in {parent}")
    card = ModelCard.load(staging)
    if (card.name, card.version) != (name, version):
        raise ModelError(f"the staged card says {card.ref}, expected {name}:{version}")
    card.verify()
    (staging / _OWNER_FILE).unlink(missing_ok=True)
    target = parent / version
    if target.exists() or (Path(registry.builtin_dir) / name / version).exists():
        raise ModelError(f"{name}:{version} already exists; a model version is never "
                         f"overwritten")
    os.chmod(staging, 0o755)
    os.rename(staging, target)  # atomic; an empty folder that appeared meanwhile is an error
    fsync_dir(parent)
    return target


def clean_staging(registry, name: str, min_age_s: float = 3600) -> list[Path]:
    """Remove staging folders of ``name`` left by a run that was killed: untouched for
    ``min_age_s`` seconds and not owned by a process still running on this machine. Returns the
    removed paths."""
    parent = _model_dir(registry, name)
    if not parent.is_dir():
        return []
    removed = []
    now = time.time()
    for child in parent.iterdir():
        if not (child.name.startswith(STAGING_PREFIX) and child.is_dir()):
            continue
        try:
            age = now - child.stat().st_mtime
        except OSError:
            continue
        if age >= min_age_s and not _owner_alive(child):
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
