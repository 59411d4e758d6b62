"""Patient identity on screen and in every output, on a real chest CT study with a planted
name, ID and birth date (tests/phi_fixtures.py):

- View > Hide patient details (Ctrl+Shift+H, persisted) hides them in the series browser, the
  tag browser, the info panel and the title, and shows them again;
- a full session (open, paint, save, case labels, export SEG / NIfTI / NRRD / CSV / JSON,
  screenshot, ``predict`` and ``predict --batch`` with their logs and summary, ``convert`` and
  ``info``, the app log at DEBUG) leaves no file that holds them, with anonymise on (the default); with anonymise off
  the exports name the patient, and the logs still never do. A screenshot hides what the
  window showed of the patient (the text drawn, and pixels only where it was)."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QDockWidget, QLabel,
                               QLineEdit, QPlainTextEdit, QTextEdit)

from medviewer.ui import settings as st

from annot_helpers import click, viewport_pos

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: phi_fixtures
from phi_fixtures import (BIRTH_DATE, NAME, PATIENT_ID, find_phi, phi_hits,  # noqa: E402
                          planted_study)

REPO = Path(__file__).resolve().parents[2]


def _model_texts(model, parent=None) -> list:
    from PySide6.QtCore import QModelIndex

    parent = QModelIndex() if parent is None else parent
    try:
        columns = model.columnCount(parent)
    except TypeError:  # list models keep it private: one column
        columns = 1
    out = []
    for r in range(model.rowCount(parent)):
        for c in range(columns):
            idx = model.index(r, c, parent)
            for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
                value = model.data(idx, role)
                if value:
                    out.append(str(value))
        first = model.index(r, 0, parent)
        try:
            nested = model.hasChildren(first)
        except TypeError:
            nested = False
        if nested:
            out += _model_texts(model, first)
    return out


def shown_texts(win) -> list:
    """Every text the window shows: its title, the visible widgets' labels, fields, buttons,
    item views (all rows and columns, tooltips too) and text panes."""
    out = [win.windowTitle()]
    for w in win.findChildren(object):
        if not hasattr(w, "isVisible") or not w.isVisible():
            continue
        if isinstance(w, (QLabel, QAbstractButton, QLineEdit)):
            out.append(w.text())
        elif isinstance(w, (QTextEdit, QPlainTextEdit)):
            out.append(w.toPlainText())
        elif isinstance(w, QAbstractItemView) and w.model() is not None:
            out += _model_texts(w.model())
        elif isinstance(w, QDockWidget):
            out.append(w.windowTitle())
        if hasattr(w, "toolTip"):
            out.append(w.toolTip())
    return [t for t in out if t]


def _phi_in(texts) -> set:
    return {v for t in texts for v in phi_hits(t.encode())}


def _open(qtbot, win, folder):
    with qtbot.waitSignal(win.loader.sig_finished, timeout=120000):
        win.open_paths([str(folder)])
    qtbot.waitUntil(lambda: win.session.active is not None, timeout=60000)
    z = win.session.cursor_zyx[0]
    qtbot.waitUntil(lambda: win.tag_browser.path == win.session.active.source_paths[z],
                    timeout=30000)


def test_hide_patient_details_hides_them_everywhere_and_is_remembered(qtbot, window, tmp_path):
    from medviewer.ui.main_window import MainWindow

    _open(qtbot, window, planted_study(tmp_path / "study", n=3))
    window.tag_dock.raise_()
    shown = _phi_in(shown_texts(window))
    assert {NAME, PATIENT_ID, BIRTH_DATE} <= shown  # series browser and tag browser show them
    act = window.actions_by_name["hide_patient"]
    assert act.shortcut().toString() == "Ctrl+Shift+H" and not act.isChecked()
    window.tri.views["axial"].setFocus()
    qtbot.keyClick(window.tri.views["axial"], Qt.Key.Key_H,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert act.isChecked() and window.privacy.hidden
    assert _phi_in(shown_texts(window)) == set()
    patient = window.series_browser.topLevelItem(0)
    assert patient.text(0) == "Patient 1"
    rows = {r.keyword: r for r in window.tag_browser._rows}
    tree = window.tag_browser.tree
    assert tree.isVisible()
    shown_rows = {tree.topLevelItem(i).text(1): tree.topLevelItem(i).text(3)
                  for i in range(tree.topLevelItemCount())}
    assert shown_rows["PatientName"] == shown_rows["PatientBirthDate"] == "(hidden)"
    assert shown_rows["Modality"] == "CT" == rows["Modality"].value  # the rest stays
    assert window.settings.value(st.HIDE_PATIENT) in (True, "true")
    window.settings.sync()
    other = MainWindow()  # the choice is remembered
    qtbot.addWidget(other)
    assert other.privacy.hidden and other.actions_by_name["hide_patient"].isChecked()
    other.close()
    other.bridge.shutdown()
    act.trigger()  # and shown again
    assert not window.privacy.hidden and patient.text(0).startswith(NAME)
    assert {NAME, PATIENT_ID} <= _phi_in(shown_texts(window))
    for name, read in (("anonymise_exports", st.anonymise_exports),
                       ("anonymise_screenshots", st.anonymise_screenshots)):
        box = window.actions_by_name[name]  # File menu: on by default, remembered when off
        assert box.isCheckable() and box.isChecked() and read(window.settings)
        box.trigger()
        assert not box.isChecked() and not read(window.settings)


# ---------------------------------------------------------------------------- full session
def _cli(args, log: Path, env) -> int:
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "medviewer.cli", *args], cwd=REPO,
                              env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=900)
    return proc.returncode


@contextlib.contextmanager
def _app_log(path: Path):
    """Everything the app logs (DEBUG and up, Python warnings included) into ``path``."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _exports(qtbot, win, out: Path, suffix: str) -> list:
    """Every export of the Labels menu, into ``out``; the files written."""
    io, ctl = win.annotation.io, win.annotation.ctl
    files = [out / f"labels{suffix}.nii.gz", out / f"labels{suffix}.nrrd",
             out / f"seg{suffix}.dcm", out / f"cases{suffix}.csv", out / f"cases{suffix}.json"]
    io.export_labelmap(files[0])
    io.export_labelmap(files[1])
    io.export_seg(files[2])
    io.export_case_labels(files[3])
    io.export_case_labels(files[4])
    qtbot.waitUntil(lambda: all(f.exists() for f in files) and not ctl.busy, timeout=120000)
    return files + [out / f"labels{suffix}.labels.json"]


@pytest.mark.slow  # a GUI session, and predict + batch in child processes
@pytest.mark.timeout(1800)
def test_a_full_session_leaves_no_patient_identity_in_any_output(qtbot, window, tmp_path):
    study = planted_study(tmp_path / "input" / "study", n=4)
    out, named, logs = tmp_path / "out", tmp_path / "named", tmp_path / "logs"
    for d in (out, named, logs):
        d.mkdir()
    workspace = Path(os.environ["MEDVIEWER_WORKSPACE"])
    assert workspace.parent == tmp_path  # the label store, journals and key are searched too
    ctl = window.annotation.ctl
    with _app_log(logs / "app.log"):
        _open(qtbot, window, study)
        qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=60000)
        ax = window.tri.views["axial"]
        window.set_tool("brush")
        window.annotation.options.set(radius_mm=10.0)
        click(ax.viewport(), viewport_pos(ax, 250, 250))
        assert ctl.labelmap.labels.any()
        ax.setFocus()
        qtbot.keyClick(ax, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)  # a case label
        with qtbot.waitSignal(ctl.sig_saved, timeout=60000):
            qtbot.mouseClick(window.annotation.case_panel.save_button, Qt.MouseButton.LeftButton)
        with qtbot.waitSignal(ctl.sig_saved, timeout=60000):
            qtbot.keyClick(ax, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
        click(ax.viewport(), viewport_pos(ax, 150, 300))  # an unsaved stroke: in the journal
        assert st.anonymise_exports(window.settings) and st.anonymise_screenshots(window.settings)
        anonymised = _exports(qtbot, window, out, "")

        # the screenshot: what it drew, and where it differs from an identified one
        window.tag_dock.raise_()
        qtbot.waitUntil(lambda: window.tag_browser.tree.isVisible())
        drawn = []
        window.privacy.sig_changed.connect(
            lambda hidden: drawn.append(shown_texts(window)) if hidden else None)
        assert {NAME, PATIENT_ID} <= _phi_in(shown_texts(window))
        shot = window.save_screenshot(str(out / "shot.png"))
        assert len(drawn) == 1 and _phi_in(drawn[0]) == set() and len(drawn[0]) > 50
        assert {NAME, PATIENT_ID} <= _phi_in(shown_texts(window))  # shown again after
        identified = window.save_screenshot(str(named / "shot.png"), anonymise=False)
        _differs_only_where_patient_details_are(window, shot, identified)

        # predict and batch from the command line, their logs kept
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
                   MEDVIEWER_MODELS=str(tmp_path / "user_models"))
        assert _cli(["predict", "--model", "ct-abdomen-organs", "--slice", "1", str(study),
                     "--out", str(out / "pred.nii.gz")], logs / "predict.log", env) == 0
        assert _cli(["predict", "--batch", "--model", "ct-abdomen-organs", "--slice", "1",
                     str(study.parent), "--out", str(out / "batch")], logs / "batch.log",
                    env) == 0
        assert _cli(["convert", str(study), str(out / "image.nii.gz")], logs / "convert.log",
                    env) == 0
        assert _cli(["info", "--json", str(study)], logs / "info.json", env) == 0

        window.settings.setValue(st.ANONYMISE_EXPORTS, False)  # the user turns it off
        identified_files = _exports(qtbot, window, named, "")
        assert _cli(["predict", "--model", "ct-abdomen-organs", "--slice", "1", str(study),
                     "--out", str(named / "pred.nii.gz"), "--no-anonymise"],
                    logs / "predict_named.log", env) == 0
        assert _cli(["convert", str(study), str(named / "image.nii.gz"), "--no-anonymise"],
                    logs / "convert_named.log", env) == 0
        window.settings.sync()
    assert (out / "batch" / "summary.jsonl").is_file() and (out / "pred.labels.json").is_file()
    assert any(p.is_file() for p in (workspace / "journal").rglob("*"))  # the unsaved stroke
    assert (workspace / "labels.db").is_file() and (logs / "app.log").stat().st_size > 0

    # anonymised: no output of the session holds the name, the ID or the birth date
    leaks = find_phi(tmp_path, skip=[tmp_path / "input", named])
    assert leaks == {}, leaks
    sidecar = json.loads((out / "labels.labels.json").read_text())
    assert sidecar["subject"]["patient"].startswith("ANON-")
    pred = json.loads((out / "pred.labels.json").read_text())
    assert pred["subject"]["patient"] == sidecar["subject"]["patient"]  # one key, one name
    # not anonymised: the exports name the patient (so the search above could find them)...
    named_hits = find_phi(named)
    for f in identified_files[2:] + [named / "pred.labels.json", named / "image.nii.gz"]:
        assert NAME in named_hits.get(f.name, ()) or PATIENT_ID in named_hits.get(f.name, ()), f
    assert "shot.png" not in named_hits  # (pixels, not text: checked above)
    # ...and the logs still never do
    assert find_phi(logs) == {}


def _differs_only_where_patient_details_are(win, anonymised: Path, identified: Path) -> None:
    """The two screenshots differ, and only inside the series and tag browsers, the info
    panel and the views' top-left corner texts (where the name, ID, dates and the description
    that repeats the ID are drawn): the images and the other panels are the same pixels."""
    from PySide6.QtGui import QImage

    def rgb(path):
        img = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
        arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), -1, 4)
        return arr[:, :img.width(), :3].astype(int)

    a, b = rgb(anonymised), rgb(identified)
    assert a.shape == b.shape
    diff = np.abs(a - b).sum(axis=2) > 0
    assert diff.sum() > 50  # the identified one draws the patient's details
    allowed = np.zeros_like(diff)
    corners = [v.label("info_tl") for v in win.tri.views.values()]
    for widget in (win.series_browser, win.tag_browser, win.tri.info, *corners):
        top_left = widget.mapTo(win, widget.rect().topLeft())
        allowed[top_left.y():top_left.y() + widget.height(),
                top_left.x():top_left.x() + widget.width()] = True
    assert not (diff & ~allowed).any(), np.argwhere(diff & ~allowed)[:5]
