"""AiFeature: the AI controller, the heat overlays, the AI dock and the AI menu, declared to
the feature registry. Loads its proposals into the "labels" another feature shares; announces
stored predictions and the selected model on the window's event hub."""
from __future__ import annotations

from PySide6.QtGui import QKeySequence

from ..features import DockSpec, FeatureHost
from ..shortcuts import KEYS
from .controller import AiController
from .overlays import HeatOverlays
from . import preload
from .panel import AiPanel


class AiFeature:
    name = "ai"

    def __init__(self, host: FeatureHost):
        self.host = host
        win, services = host.window, host.services
        self.heat = HeatOverlays(host.session, host.views, win)
        self.ctl = AiController(host.session, host.get("labels"), self.heat, host.settings,
                                services.workspace, services.catalog, host.bridge, win)
        self.panel = AiPanel(self.ctl, win)
        host.registry.dock(DockSpec("aiDock", "AI", self._scrolling(self.panel, win),
                                    tab_with="segmentationDock"))
        self._declare_menu()
        events = host.events
        self.ctl.sig_error.connect(host.show_error)
        self.ctl.sig_status.connect(host.status)
        self.ctl.sig_selected.connect(events.sig_model_selected)
        self.ctl.sig_segmentation.connect(lambda run: events.sig_record_stored.emit(run.record))
        self.ctl.sig_classification.connect(
            lambda run: run is not None and events.sig_record_stored.emit(run.record))
        self.ctl.sig_reviewed.connect(events.sig_record_stored)
        events.sig_models_changed.connect(lambda: self.ctl.refresh_models())
        self.ctl.sig_model_created.connect(lambda card: events.sig_models_changed.emit())

    @staticmethod
    def _scrolling(panel, parent):
        """The panel in a vertical scroll area: a tall result (warnings, limits) scrolls
        instead of squeezing the group boxes."""
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QFrame, QScrollArea

        scroll = QScrollArea(parent)
        scroll.setObjectName("aiScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(panel)
        return scroll

    @property
    def dock(self):
        return self.host.docks.get("aiDock")

    @property
    def menu(self):
        return self.host.menus.get("ai")

    def start(self) -> None:
        acts = self.host.actions
        acts["ai_cancel"].setShortcut(QKeySequence())  # Esc is given to it only while a job runs
        acts["ai_cancel"].setToolTip(f"Stop the running AI job ({KEYS['ai_cancel']} while it runs)")
        acts["ai_uncertainty"].setChecked(self.ctl.want_uncertainty)
        self.panel.saliency.toggled.connect(acts["ai_saliency"].setChecked)
        self.panel.uncertainty.toggled.connect(acts["ai_uncertainty"].setChecked)
        self.ctl.sig_running.connect(self._on_running)
        self.ctl.sig_selected.connect(lambda card: self._update_actions())
        self.ctl.sig_fits.connect(lambda fits: self._update_actions())
        self.ctl.refresh_models()
        self._update_actions()
        preload.schedule(self.host.window)  # torch/MONAI imported in the background

    def _declare_menu(self) -> None:
        ctl, acts, reg = self.ctl, self.host.actions, self.host.registry
        reg.menu("ai", "&AI", "aiMenu", order=20)
        reg.actions("ai", [
            ("ai_run_slice", "Run on &slice", ctl.run_slice,
             "Run the selected model on the current axial slice (a 2D image: the image)"),
            ("ai_run_volume", "Run on &volume", ctl.run_volume, "Run the selected model on the whole volume"),
            ("ai_cancel", "&Cancel AI job", ctl.cancel, "Stop the running AI job"),
            None,
            ("ai_import", "&Import model folder…", self.panel._import_dialog,
             "Validate a model folder and copy it into the user models folder"),
            ("ai_new_model", "&New model…", self.show_new_model,
             "A model for your own task (untrained until its first fine-tune)"),
            None,
            ("ai_saliency", "Show s&aliency", lambda: self.panel.saliency.setChecked(
                acts["ai_saliency"].isChecked()), "Grad-CAM / integrated gradients heat map"),
            ("ai_uncertainty", "Show &uncertainty", lambda: self.panel.uncertainty.setChecked(
                acts["ai_uncertainty"].isChecked()), "Per-voxel entropy of the segmentation"),
            ("ai_goto_uncertain", "&Go to most uncertain slice", ctl.goto_most_uncertain,
             "The axial slice with the highest mean entropy"),
        ], checkable=("ai_saliency", "ai_uncertainty"))

    def show_new_model(self):
        """AI > New model…: the dialog (modeless)."""
        from .new_model_dialog import show_new_model_dialog

        return show_new_model_dialog(self.host.window, self.ctl)

    def _update_actions(self) -> None:
        acts, running = self.host.actions, self.ctl.running
        has_card = self.ctl.card is not None and self.ctl.fit_of(self.ctl.card.ref).fits
        acts["ai_run_slice"].setEnabled(has_card and not running)
        acts["ai_run_volume"].setEnabled(has_card and not running)
        acts["ai_cancel"].setEnabled(running)
        acts["ai_import"].setEnabled(not running)
        acts["ai_new_model"].setEnabled(not running)

    def _on_running(self, running: bool) -> None:
        """Esc cancels the AI job while one runs (and picks the Navigate tool otherwise)."""
        acts = self.host.actions
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
