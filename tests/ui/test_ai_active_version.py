"""The AI panel runs a model's ACTIVE version by default and marks it; a selection that was the
active version follows the pointer after a promotion. Real model folders (copies of the
built-in models under new versions)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ai_helpers import CLS_MODEL, isolate_user_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "ai"))
from _model_versions import BUILTIN, make_version  # noqa: E402


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    folder = tmp_path / "user-models"
    monkeypatch.setenv("MEDVIEWER_MODELS", str(folder))
    isolate_user_models(tmp_path, monkeypatch)
    make_version(folder, "1.1.0", noise=0.05)
    make_version(folder, "1.2.0", parent="1.1.0", noise=0.05, seed=1)
    from medviewer.ai import versions
    from medviewer.ai.registry import ModelRegistry

    versions.promote(ModelRegistry(), CLS_MODEL, "1.1.0")
    return folder


def _texts(panel) -> dict:
    items = (panel.models.item(i) for i in range(panel.models.count()))
    return {it.data(256): it.text() for it in items}  # 256 = Qt.UserRole (the ref)


def test_panel_defaults_to_and_follows_the_active_version(user_dir, window):
    from medviewer.ai import versions

    ctl, panel = window.ai.ctl, window.ai.panel
    assert f"{CLS_MODEL}:1.1.0" in ctl.active_refs
    texts = _texts(panel)
    assert texts[f"{CLS_MODEL}:1.1.0"].endswith("(active)")
    assert not texts[f"{CLS_MODEL}:1.0.0"].endswith("(active)")
    assert not texts[f"{CLS_MODEL}:1.2.0"].endswith("(active)")

    ctl.select(f"{CLS_MODEL}:1.1.0")  # the active version selected ...
    versions.promote(ctl.registry, CLS_MODEL, "1.2.0")
    ctl.refresh_models()  # ... follows the pointer
    assert ctl.card.ref == f"{CLS_MODEL}:1.2.0"
    assert _texts(panel)[f"{CLS_MODEL}:1.2.0"].endswith("(active)")

    ctl.select(f"{CLS_MODEL}:1.0.0")  # an explicitly chosen older version stays chosen
    versions.rollback(ctl.registry, CLS_MODEL)
    ctl.refresh_models()
    assert ctl.card.ref == f"{CLS_MODEL}:1.0.0"


def test_without_a_selection_the_first_models_active_version_is_chosen(user_dir, window):
    from medviewer.ai import versions

    ctl = window.ai.ctl
    first = ctl.default_ref().split(":")[0]  # the model offered first (not superseded)
    src = BUILTIN / first / "1.0.0"
    import json
    import shutil

    dst = user_dir / first / "1.5.0"
    shutil.copytree(src, dst)
    card = json.loads((dst / "model.json").read_text())
    card.update(version="1.5.0", parent_version="1.0.0")
    (dst / "model.json").write_text(json.dumps(card))
    ctl.card = None
    ctl.refresh_models()
    assert ctl.card.ref == f"{first}:1.0.0"  # no pointer: the highest built-in, not 1.5.0
    versions.promote(ctl.registry, first, "1.5.0")
    ctl.card = None
    ctl.refresh_models()
    assert ctl.card.ref == f"{first}:1.5.0"
