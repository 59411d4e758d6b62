"""Model versions: the active pointer, promote / rollback, new version names, staging + commit.

Real model folders: the built-in pneumonia-cxr 1.0.0 copied into a temporary user models folder
under new versions (changed card, perturbed weights, recomputed hashes)."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medviewer.ai import versions
from medviewer.ai.cards import ModelCard, ModelError
from medviewer.ai.registry import ModelRegistry

from _model_versions import (BASE, BUILTIN, NAME, REPO, SMALL, TAMPERED, make_small_version,
                            make_version, tamper)


@pytest.fixture
def reg(tmp_path):
    return ModelRegistry(builtin_dir=BUILTIN, user_dir=tmp_path / "user")


def _pointer(reg) -> dict:
    return json.loads((reg.user_dir / NAME / "active.json").read_text())


def test_without_pointer_get_takes_the_highest_builtin_not_a_newer_user_version(reg):
    make_version(reg.user_dir, "1.1.0", noise=0.05)
    assert [c.version for c in reg.list() if c.name == NAME] == ["1.0.0", "1.1.0"]
    assert versions.active_version(reg, NAME) is None
    assert reg.get(NAME).version == "1.0.0" and reg.is_builtin(reg.get(NAME))
    assert reg.get(f"{NAME}:1.1.0").version == "1.1.0"  # an explicit version is honoured
    assert versions.active_refs(reg)[NAME] == f"{NAME}:1.0.0"


def test_promote_moves_the_pointer_and_get_follows_it(reg):
    make_version(reg.user_dir, "1.1.0", noise=0.05)
    versions.promote(reg, NAME, "1.1.0", reason="better on the frozen val set")
    assert versions.active_version(reg, NAME) == "1.1.0"
    card = reg.get(NAME)
    assert card.version == "1.1.0" and card.folder == reg.user_dir / NAME / "1.1.0"
    pointer = _pointer(reg)
    assert pointer["version"] == "1.1.0"
    (entry,) = pointer["history"]
    assert entry["action"] == "promote" and entry["previous"] == "1.0.0"
    assert entry["reason"] == "better on the frozen val set" and entry["at"]
    # no temporary files are left beside the pointer
    assert sorted(p.name for p in (reg.user_dir / NAME).iterdir()
                  if not p.name.startswith(".active.lock")) == ["1.1.0", "active.json"]
    # promoting the active version again changes nothing
    versions.promote(reg, NAME, "1.1.0")
    assert len(_pointer(reg)["history"]) == 1


def test_promote_refuses_missing_and_tampered_versions_and_keeps_the_pointer(reg):
    make_version(reg.user_dir, "1.1.0", noise=0.05)
    tamper(make_version(reg.user_dir, "1.2.0", noise=0.1, seed=1))
    versions.promote(reg, NAME, "1.1.0")
    with pytest.raises(ModelError, match="does not match the card's sha256"):
        versions.promote(reg, NAME, "1.2.0")
    with pytest.raises(ModelError, match="no version 9.9.9"):
        versions.promote(reg, NAME, "9.9.9")
    with pytest.raises(ModelError, match="no model named"):
        versions.promote(reg, "no-such-model", "1.0.0")
    with pytest.raises(ModelError, match="version must look like"):
        versions.promote(reg, NAME, "latest")
    assert versions.active_version(reg, NAME) == "1.1.0"
    assert len(_pointer(reg)["history"]) == 1


def test_rollback_to_a_version_and_to_the_previously_active_one(reg):
    make_version(reg.user_dir, "1.1.0", noise=0.05)
    make_version(reg.user_dir, "1.2.0", parent="1.1.0", noise=0.05, seed=2)
    with pytest.raises(ModelError, match="no previously active version"):
        versions.rollback(reg, NAME)  # nothing was ever promoted
    versions.promote(reg, NAME, "1.1.0")
    versions.promote(reg, NAME, "1.2.0")
    assert versions.rollback(reg, NAME) == "1.1.0"  # the one active before 1.2.0
    assert reg.get(NAME).version == "1.1.0"
    assert versions.rollback(reg, NAME, "1.0.0") == "1.0.0"  # any earlier version, built-in too
    assert reg.get(NAME).version == "1.0.0" and reg.is_builtin(reg.get(NAME))
    assert versions.rollback(reg, NAME) == "1.1.0"  # undo the rollback
    hist = versions.history(reg, NAME)
    assert [(h["action"], h["version"], h["previous"]) for h in hist] == [
        ("promote", "1.1.0", "1.0.0"), ("promote", "1.2.0", "1.1.0"),
        ("rollback", "1.1.0", "1.2.0"), ("rollback", "1.0.0", "1.1.0"),
        ("rollback", "1.1.0", "1.0.0")]
    tamper(reg.user_dir / NAME / "1.2.0")
    with pytest.raises(ModelError, match="sha256"):
        versions.rollback(reg, NAME, "1.2.0")
    assert versions.active_version(reg, NAME) == "1.1.0"


def test_a_pointer_to_a_removed_version_or_a_corrupt_pointer_falls_back(reg):
    folder = make_version(reg.user_dir, "1.1.0", noise=0.05)
    make_version(reg.user_dir, "1.2.0", noise=0.05, seed=3)
    versions.promote(reg, NAME, "1.1.0")
    import shutil

    shutil.rmtree(folder)
    assert versions.active_version(reg, NAME) is None
    assert reg.get(NAME).version == "1.0.0"  # highest built-in, not the user's 1.2.0
    assert any("active version 1.1.0 does not exist" in m for _, m in reg.problems)
    (reg.user_dir / NAME / "active.json").write_text("{not json")
    assert versions.active_version(reg, NAME) is None and reg.get(NAME).version == "1.0.0"
    versions.promote(reg, NAME, "1.2.0")  # writes a fresh pointer
    assert _pointer(reg)["version"] == "1.2.0" and reg.get(NAME).version == "1.2.0"


def test_next_version_bumps_minor_past_every_existing_version(reg):
    assert versions.next_version(reg, NAME, "1.0.0") == "1.1.0"
    make_version(reg.user_dir, "1.1.0")
    assert versions.next_version(reg, NAME, "1.0.0") == "1.2.0"
    assert versions.next_version(reg, NAME, "1.1.0") == "1.2.0"
    # a refused folder (broken card) still holds its version name
    broken = make_version(reg.user_dir, "1.4.0")
    (broken / "model.json").write_text("{}")
    assert f"{NAME}:1.4.0" not in {c.ref for c in reg.list()}
    assert versions.next_version(reg, NAME, "1.0.0") == "1.5.0"
    assert versions.next_version(reg, "brand-new", "0.3.2") == "0.4.0"


def _stage(reg, version: str, parent: str = "1.0.0"):
    """A staging folder holding a complete version (what the trainer writes there)."""
    staging = versions.staging_dir(reg, NAME)
    tmp = make_version(reg.user_dir, version, parent=parent, noise=0.05,
                       dest=staging.parent / ("build-" + staging.name[1:]))
    for f in tmp.iterdir():
        f.rename(staging / f.name)
    tmp.rmdir()
    return staging


def test_staging_is_hidden_and_commit_makes_the_version_appear_at_once(reg):
    staging = _stage(reg, "1.1.0")
    assert staging.parent == reg.user_dir / NAME and staging.name.startswith(".staging-")
    assert [c.version for c in reg.list() if c.name == NAME] == ["1.0.0"]
    assert reg.problems == []  # a hidden folder is ignored, not refused
    hidden = reg.user_dir / ".trash" / "1.3.0"  # a hidden model-name folder too
    make_version(reg.user_dir, "1.3.0", dest=hidden)
    assert [c.version for c in reg.list() if c.name == NAME] == ["1.0.0"] and not reg.problems
    folder = versions.commit_version(staging, reg, NAME, "1.1.0")
    assert folder == reg.user_dir / NAME / "1.1.0" and not staging.exists()
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "model.json", "weights.safetensors"]
    card = reg.get(f"{NAME}:1.1.0")
    card.verify()
    assert card.parent_version == "1.0.0"
    assert reg.get(NAME).version == "1.0.0"  # committing never promotes


def test_commit_refuses_existing_mismatched_and_tampered_versions(reg):
    make_version(reg.user_dir, "1.1.0", seed=5, noise=0.01)
    before = (reg.user_dir / NAME / "1.1.0" / "weights.safetensors").read_bytes()
    staging = _stage(reg, "1.1.0")
    with pytest.raises(ModelError, match="already exists"):
        versions.commit_version(staging, reg, NAME, "1.1.0")
    assert (reg.user_dir / NAME / "1.1.0" / "weights.safetensors").read_bytes() == before
    with pytest.raises(ModelError, match="already exists"):  # a built-in version
        versions.commit_version(_stage(reg, "1.0.0"), reg, NAME, "1.0.0")
    with pytest.raises(ModelError, match="expected pneumonia-cxr:1.2.0"):
        versions.commit_version(staging, reg, NAME, "1.2.0")
    tamper(staging)
    card = json.loads((staging / "model.json").read_text())
    card["version"] = "1.2.0"
    (staging / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256"):
        versions.commit_version(staging, reg, NAME, "1.2.0")
    with pytest.raises(ModelError, match="not a staging folder"):
        versions.commit_version(reg.user_dir / NAME / "1.1.0", reg, NAME, "1.3.0")
    assert staging.is_dir() and not (reg.user_dir / NAME / "1.2.0").exists()


def _dead_owner(reg) -> str:
    """The owner record of a staging folder made by a process that has exited."""
    code = ("import sys; from medviewer.ai import versions; from medviewer.ai.registry import "
            "ModelRegistry; r = ModelRegistry(builtin_dir=sys.argv[1], user_dir=sys.argv[2]); "
            "print(versions.staging_dir(r, sys.argv[3]))")
    out = subprocess.run([sys.executable, "-c", code, str(BUILTIN), str(reg.user_dir), NAME],
                         cwd=REPO, capture_output=True, text=True, check=True)
    dead = Path(out.stdout.strip())
    text = (dead / ".owner").read_text()
    shutil.rmtree(dead)
    return text


def test_clean_staging_removes_dead_owners_at_once_and_keeps_live_ones(reg):
    import socket

    dead_text = _dead_owner(reg)
    dead = _stage(reg, "1.1.0")  # a complete candidate whose run was killed
    (dead / ".owner").write_text(dead_text)
    alive = versions.staging_dir(reg, NAME)  # this process
    record = json.loads((alive / ".owner").read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    reused = versions.staging_dir(reg, NAME)  # this pid, but recorded for an earlier process
    if record["started"] is not None:
        (reused / ".owner").write_text(json.dumps(dict(record, started=record["started"] + "0")))
    else:  # no process start times here: only an exited pid can be told dead
        (reused / ".owner").write_text(dead_text)
    old_format = versions.staging_dir(reg, NAME)  # "<host> <pid>" of an earlier release
    (old_format / ".owner").write_text(f"{socket.gethostname()} {json.loads(dead_text)['pid']}")
    foreign = versions.staging_dir(reg, NAME)  # another machine's run: cannot be asked
    (foreign / ".owner").write_text(json.dumps(dict(record, host="another-" + record["host"])))
    ownerless_young, ownerless_old = (versions.staging_dir(reg, NAME) for _ in range(2))
    for path in (ownerless_young, ownerless_old):
        (path / ".owner").unlink()
    past = time.time() - 7200
    os.utime(ownerless_old, (past, past))
    os.utime(foreign, (past, past))
    removed = versions.clean_staging(reg, NAME)  # no age needed for a dead owner
    assert sorted(removed) == sorted([dead, reused, old_format, ownerless_old])
    assert alive.is_dir() and foreign.is_dir() and ownerless_young.is_dir()
    assert versions.clean_staging(reg, NAME) == []  # the live one stays, run after run
    assert (reg.user_dir / NAME).is_dir() and versions.clean_staging(reg, "nothing-here") == []


def test_commit_new_version_takes_the_number_when_it_commits(reg):
    first, second = versions.staging_dir(reg, NAME), versions.staging_dir(reg, NAME)
    assert "1.1.0" not in first.name and "1.1.0" not in second.name  # not named by a version
    stamped = []

    def stamper(staging):
        def stamp(version):  # what a run writes once its version is known
            stamped.append(version)
            tmp = make_version(reg.user_dir, version, noise=0.05,
                               dest=staging.parent / ("build-" + staging.name[1:]))
            for f in tmp.iterdir():
                f.replace(staging / f.name)
            tmp.rmdir()
        return stamp

    # both staged from 1.0.0 while no new version existed; the second commits after the first
    v1, f1 = versions.commit_new_version(second, reg, NAME, "1.0.0", stamper(second))
    v2, f2 = versions.commit_new_version(first, reg, NAME, "1.0.0", stamper(first))
    assert (v1, v2) == ("1.1.0", "1.2.0") and stamped == ["1.1.0", "1.2.0"]
    assert f1 == reg.user_dir / NAME / "1.1.0" and f2 == reg.user_dir / NAME / "1.2.0"
    for version, folder in ((v1, f1), (v2, f2)):
        assert ModelCard.load(folder).version == version and not (folder / ".owner").exists()
    # a version that appears while a commit writes its files (an import, a run without flock)
    third = versions.staging_dir(reg, NAME)
    base_stamp = stamper(third)

    def racing_stamp(version):
        if version == "1.3.0":
            make_version(reg.user_dir, "1.3.0", seed=9)
        base_stamp(version)

    v3, f3 = versions.commit_new_version(third, reg, NAME, "1.0.0", racing_stamp)
    assert v3 == "1.4.0" and ModelCard.load(f3).version == "1.4.0"
    assert ModelCard.load(reg.user_dir / NAME / "1.3.0").description.startswith(
        f"{NAME} 1.3.0: a test copy")  # the other version is untouched
    assert not any(p.name.startswith(".staging-") for p in (reg.user_dir / NAME).iterdir())


def test_the_committed_card_round_trips(reg):
    folder = versions.commit_version(_stage(reg, "1.1.0"), reg, NAME, "1.1.0")
    again = ModelCard.load(folder)
    base = ModelCard.load(BASE)
    assert again.labels == base.labels and again.architecture == base.architecture
    assert again.weights["sha256"] != base.weights["sha256"]  # perturbed weights, new hash


@pytest.mark.parametrize("kind", list(TAMPERED))
def test_promote_refuses_a_version_that_does_not_load_or_run(reg, kind):
    """Real smallcnn copies broken one way each: promote loads the weights and runs one input
    of the card's shape before it moves the pointer; the refusal names the version and why,
    never torch's advice to turn weights_only off, and the pointer stays."""
    make_small_version(reg.user_dir, "1.1.0")
    versions.promote(reg, SMALL, "1.1.0")
    make_small_version(reg.user_dir, "1.2.0", tampered=kind)
    before = (reg.user_dir / SMALL / "active.json").read_text()
    with pytest.raises(ModelError) as exc:
        versions.promote(reg, SMALL, "1.2.0")
    msg = str(exc.value)
    assert msg.startswith(f"refusing to promote {SMALL}:1.2.0: "), msg
    assert TAMPERED[kind] in msg and "the active version stays 1.1.0" in msg, msg
    assert "weights_only" not in msg and "trust" not in msg and "\n" not in msg
    assert len(msg) < 400, msg
    assert (reg.user_dir / SMALL / "active.json").read_text() == before
    assert reg.get(SMALL).version == "1.1.0"
    with pytest.raises(ModelError, match=f"refusing to roll back to {SMALL}:1.2.0: "):
        versions.rollback(reg, SMALL, "1.2.0")
    assert (reg.user_dir / SMALL / "active.json").read_text() == before


def test_a_pickled_module_is_refused_in_our_words_wherever_it_is_loaded(reg):
    """What predict and import meet: a .pt holding a whole module is never unpickled with
    weights_only off, and torch's advice to do so is not passed on."""
    from medviewer.ai.registry import load_model

    folder = make_small_version(reg.user_dir, "1.1.0", tampered="pickled-module")
    for attempt in (lambda: load_model(reg.get(f"{SMALL}:1.1.0")),
                    lambda: ModelRegistry(builtin_dir=BUILTIN,
                                          user_dir=reg.user_dir / "other").import_folder(folder)):
        with pytest.raises(ModelError, match="pickled Python objects") as exc:
            attempt()
        assert "weights_only" not in str(exc.value) and "trust" not in str(exc.value)
