"""AiUI: puts the AI controller, the heat overlays, the AI dock and the AI menu into a
MainWindow (the main window only creates this and shuts it down)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMenu

from ..menus import add_window_actions
from ..shortcuts import KEYS
from .controller import AiController
from .overlays import HeatOverlays
from . import preload
from .panel import AiPanel


class AiUI:
    def __init__(self, win):
        self.win = win
        self.heat = HeatOverlays(win.session, win.tri.views, win)
        self.ctl = AiController(win.session, win.annotation.ctl, self.heat, win.settings, win)
        self.panel = AiPanel(self.ctl, win)
        self.dock = win._dock("AI", "aiDock", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        win.tabifyDockWidget(win.annotation.seg_dock, self.dock)
        win.annotation.seg_dock.raise_()
        self._build_menu()
        self.ctl.sig_error.connect(win.show_error)
        self.ctl.sig_status.connect(lambda m: win.statusBar().showMessage(m, 8000))
        self.ctl.sig_running.connect(self._on_running)
        self.ctl.sig_selected.connect(lambda card: self._update_actions())
        self.ctl.refresh_models()
        self._update_actions()
        preload.schedule(win)  # torch/MONAI imported in the background, not in the first job

    def _build_menu(self) -> None:
        win, ctl, acts = self.win, self.ctl, self.win.actions_by_name
        bar = win.menuBar()
        m = QMenu("&AI", win)
        m.setObjectName("aiMenu")
        help_menu = next((a for a in bar.actions() if a.text() == "&Help"), None)
        bar.insertMenu(help_menu, m) if help_menu is not None else bar.addMenu(m)
        self.menu = m
        items = [
            ("ai_run_slice", "Run on &slice", ctl.run_slice,
             "Run the selected model on the current axial slice (a 2D image: the image)"),
            ("ai_run_volume", "Run on &volume", ctl.run_volume, "Run the selected model on the whole volume"),
            ("ai_cancel", "&Cancel AI job", ctl.cancel, "Stop the running AI job"),
            None,
            ("ai_import", "&Import model folder…", self.panel._import_dialog,
             "Validate a model folder and copy it into the user models folder"),
            None,
            ("ai_saliency", "Show s&aliency", lambda: self.panel.saliency.setChecked(
                acts["ai_saliency"].isChecked()), "Grad-CAM / integrated gradients heat map"),
            ("ai_uncertainty", "Show &uncertainty", lambda: self.panel.uncertainty.setChecked(
                acts["ai_uncertainty"].isChecked()), "Per-voxel entropy of the segmentation"),
            ("ai_goto_uncertain", "&Go to most uncertain slice", ctl.goto_most_uncertain,
             "The axial slice with the highest mean entropy"),
        ]
        add_window_actions(win, m, acts, items, checkable=("ai_saliency", "ai_uncertainty"))
        acts["ai_cancel"].setShortcut(QKeySequence())  # Esc is given to it only while a job runs
        acts["ai_cancel"].setToolTip(f"Stop the running AI job ({KEYS['ai_cancel']} while it runs)")
        acts["ai_uncertainty"].setChecked(ctl.want_uncertainty)
        self.panel.saliency.toggled.connect(acts["ai_saliency"].setChecked)
        self.panel.uncertainty.toggled.connect(acts["ai_uncertainty"].setChecked)
        win.addActions([acts[n] for n in ("ai_run_slice", "ai_run_volume", "ai_cancel",
                                          "ai_goto_uncertain")])

    def _update_actions(self) -> None:
        acts, running = self.win.actions_by_name, self.ctl.running
        has_card = self.ctl.card is not None
        acts["ai_run_slice"].setEnabled(has_card and not running)
        acts["ai_run_volume"].setEnabled(has_card and not running)
        acts["ai_cancel"].setEnabled(running)
        acts["ai_import"].setEnabled(not running)

    def _on_running(self, running: bool) -> None:
        """Esc cancels the AI job while one runs (and picks the Navigate tool otherwise)."""
        acts = self.win.actions_by_name
        esc = QKeySequence(KEYS["ai_cancel"])
        nav = acts.get("tool_navigate")
        if running:
            if nav is not None and nav.shortcut() == esc:
                nav.setShortcut(QKeySequence())
            acts["ai_cancel"].setShortcut(esc)
        else:
            acts["ai_cancel"].setShortcut(QKeySequence())
            if nav is not None and nav.shortcut().isEmpty():
                nav.setShortcut(QKeySequence(KEYS["tool_navigate"]))
        self._update_actions()

    def shutdown(self) -> None:
        self.ctl.shutdown()
