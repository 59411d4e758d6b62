"""ReviewFeature: the learning loop in the window — the review queue and annotation-effort
docks, "Open next case" (N), and the Fine-tune… / Model versions… entries of the AI menu with
the fine-tune controller (it owns the training child process, so a run outlives its dialog).
Keeps both docks fresh when records are stored (the window's event hub)."""
from __future__ import annotations

from typing import Optional

from medviewer.services.review import OpenedCase

from ..features import DockSpec, FeatureHost
from .controller import FinetuneController
from .dialog import show_finetune_dialog
from .effort_panel import EffortPanel
from .review_queue import ReviewQueuePanel
from .versions_panel import show_versions_dialog


class ReviewFeature:
    name = "review"

    def __init__(self, host: FeatureHost):
        self.host = host
        win, services = host.window, host.services
        self.labels = host.get("labels")
        store_fn = lambda: services.workspace.store  # noqa: E731  (the folder may change)
        self.queue = ReviewQueuePanel(host.bridge, store_fn, open_fn=self.show_case,
                                      current_hash_fn=self.current_hash,
                                      dims_fn=services.catalog.dims, parent=win)
        self.effort = EffortPanel(host.bridge, store_fn, win)
        self.finetune = FinetuneController(host.bridge, store_fn, lambda: services.catalog,
                                           parent=win)
        reg = host.registry
        reg.dock(DockSpec("reviewQueueDock", "Review queue", self.queue, tab_with="aiDock",
                          tab_title="Review"))
        # a wide table: along the bottom, shown on demand (AI menu, View > Panels)
        reg.dock(DockSpec("effortDock", "Annotation effort", self.effort, area="bottom",
                          hidden=True))
        reg.actions("ai", [
            None,
            ("ai_finetune", "&Fine-tune…", self.show_finetune,
             "Train a new version of a model on the corrected cases (child process)"),
            ("ai_versions", "Model &versions…", self.show_versions,
             "Versions of a model: metrics, parent, active; promote or roll back"),
            None,
            ("review_next", "Open &next case in the review queue", self.queue.open_next,
             "Open the next most uncertain uncorrected prediction"),
            ("show_effort", "Annotation &effort by model version", self.show_effort,
             "Annotation time and voxels edited per case, grouped by the model version whose "
             "prediction was corrected"),
        ])
        self.queue.sig_error.connect(host.show_error)
        self.effort.sig_error.connect(host.show_error)
        self.queue.sig_status.connect(host.status)
        host.events.sig_record_stored.connect(lambda rec: self.refresh_all())
        self.finetune.sig_finished.connect(
            lambda outcome, _p: outcome == "done" and host.events.sig_models_changed.emit())

    def start(self) -> None:
        docks = self.host.docks
        docks["reviewQueueDock"].visibilityChanged.connect(lambda vis: vis and self._refresh_if_store())
        docks["effortDock"].visibilityChanged.connect(lambda vis: vis and self._refresh_if_store())

    # ------------------------------------------------------------------ actions
    def _selected_ref(self) -> Optional[str]:
        card = self.host.events.selected_model
        return card.ref if card is not None else None

    def show_finetune(self):
        return show_finetune_dialog(self.host.window, self.finetune, self._selected_ref())

    def show_versions(self):
        name = (self._selected_ref() or "").partition(":")[0] or None
        return show_versions_dialog(self.host.window, self.host.bridge,
                                    self.host.services.catalog, name)

    def show_effort(self) -> None:
        dock = self.host.docks["effortDock"]
        dock.show()
        dock.raise_()
        self._refresh_if_store()

    # ------------------------------------------------------------------ callbacks
    def _refresh_if_store(self) -> None:
        """Refresh only when the workspace has a label store (never create one just to look)."""
        if self.host.services.workspace.has_store():
            self.refresh_all()

    def refresh_all(self) -> None:
        self.queue.refresh()
        self.effort.refresh()

    def current_hash(self) -> Optional[str]:
        st = self.labels.state
        return None if st is None else st.image_hash

    def show_case(self, opened: OpenedCase) -> None:
        """Make the reopened case the active image (reusing it when it is open already) and
        go to the prediction's slice, once unsaved strokes on the active image are dealt with."""
        if self.host.confirm_leave("opening the next case", lambda: self._show_case(opened)):
            self._show_case(opened)

    def _show_case(self, opened: OpenedCase) -> None:
        session = self.host.session
        vol = self.labels.open_volume(opened.image_hash)
        if vol is None:
            session.add_volume(opened.volume)
            vol = opened.volume
        elif session.active is not vol:
            session.set_active(vol)
        for note in opened.notes:
            self.host.status(note, 10000)
        if opened.slice_z is not None and vol.shape[0] > 1:
            _, y, x = session.cursor_zyx
            session.set_cursor_index((opened.slice_z, y, x))

    def shutdown(self) -> None:
        self.finetune.shutdown()  # stop a running fine-tuning child
