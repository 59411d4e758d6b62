"""ReviewDocks: puts the review queue and the effort docks into a MainWindow, with the
"next case" action, and keeps both fresh when predictions and corrections are stored."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from .effort_panel import EffortPanel
from .queue_jobs import OpenedCase
from .review_queue import NEXT_CASE_KEY, ReviewQueuePanel


class ReviewDocks:
    def __init__(self, win):
        self.win = win
        ann = win.annotation.ctl
        store_fn = lambda: ann.store  # noqa: E731  (the workspace may change in the settings)
        self.queue = ReviewQueuePanel(win.bridge, store_fn, open_fn=self.show_case,
                                      current_hash_fn=self.current_hash, dims_fn=self.model_dims,
                                      parent=win)
        self.effort = EffortPanel(win.bridge, store_fn, win)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.queue_dock = win._dock("Review queue", "reviewQueueDock", self.queue, right)
        # a wide table: along the bottom, shown on demand (AI menu, View > Panels)
        self.effort_dock = win._dock("Annotation effort", "effortDock", self.effort,
                                     Qt.DockWidgetArea.BottomDockWidgetArea)
        self.effort_dock.hide()
        anchor = getattr(getattr(win, "ai", None), "dock", None)
        if anchor is not None:
            win.tabifyDockWidget(anchor, self.queue_dock)
        seg = getattr(getattr(win, "annotation", None), "seg_dock", None)
        if seg is not None:
            seg.raise_()
        self._add_actions()
        self.queue.sig_error.connect(win.show_error)
        self.effort.sig_error.connect(win.show_error)
        self.queue.sig_status.connect(lambda m: win.statusBar().showMessage(m, 8000))
        ann.sig_saved.connect(lambda rec: self.refresh_all())
        ai = getattr(win, "ai", None)
        if ai is not None:
            ai.ctl.sig_segmentation.connect(lambda run: self.refresh_all())
            ai.ctl.sig_classification.connect(lambda run: run is not None and self.refresh_all())
            ai.ctl.sig_reviewed.connect(lambda rec: self.refresh_all())
        self.queue_dock.visibilityChanged.connect(lambda vis: vis and self._refresh_if_store())
        self.effort_dock.visibilityChanged.connect(lambda vis: vis and self._refresh_if_store())

    def _add_actions(self) -> None:
        win, acts = self.win, self.win.actions_by_name
        act = QAction("Open &next case in the review queue", win)
        act.setObjectName("action_review_next")
        act.setShortcut(QKeySequence(NEXT_CASE_KEY))
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.setToolTip(f"Open the next case of the review queue ({NEXT_CASE_KEY})")
        act.setStatusTip("Open the next most uncertain uncorrected prediction")
        act.triggered.connect(lambda checked=False: self.queue.open_next())
        acts["review_next"] = act
        win.addAction(act)
        effort = QAction("Annotation &effort by model version", win)
        effort.setObjectName("action_show_effort")
        effort.setStatusTip("Annotation time and voxels edited per case, grouped by the model "
                            "version whose prediction was corrected")
        effort.triggered.connect(lambda checked=False: self.show_effort())
        acts["show_effort"] = effort
        menu = getattr(getattr(win, "ai", None), "menu", None)
        if menu is not None:
            menu.addSeparator()
            menu.addAction(act)
            menu.addAction(effort)

    def show_effort(self) -> None:
        self.effort_dock.show()
        self.effort_dock.raise_()
        self._refresh_if_store()

    # ------------------------------------------------------------------ callbacks
    def _refresh_if_store(self) -> None:
        """Refresh only when the workspace has a label store (never create one just to look)."""
        ann = self.win.annotation.ctl
        if (ann.workspace / "labels.db").exists():
            self.refresh_all()

    def refresh_all(self) -> None:
        self.queue.refresh()
        self.effort.refresh()

    def current_hash(self) -> Optional[str]:
        st = self.win.annotation.ctl.state
        return None if st is None else st.image_hash

    def model_dims(self, name: str) -> Optional[int]:
        ai = getattr(self.win, "ai", None)
        cards = list(ai.ctl.cards or []) if ai is not None else []
        card = next((c for c in reversed(cards) if c.name == name), None)
        if card is None:
            try:
                from medviewer.ai.registry import ModelRegistry

                card = ModelRegistry().get(name)
            except Exception:  # an unknown model: split by image
                return None
        try:
            return int(card.input.get("dims"))
        except (TypeError, ValueError):
            return None

    def _open_volume(self, image_hash: str):
        """A volume of the session whose annotation state knows ``image_hash``."""
        ann, session = self.win.annotation.ctl, self.win.session
        for st in list(getattr(ann, "_states", {}).values()):
            if st.image_hash == image_hash and any(v is st.volume for v in session.volumes):
                return st.volume
        return None

    def show_case(self, opened: OpenedCase) -> None:
        """Make the reopened case the active image (reusing it when it is open already) and
        go to the prediction's slice."""
        session = self.win.session
        vol = self._open_volume(opened.image_hash)
        if vol is None:
            session.add_volume(opened.volume)
            vol = opened.volume
        elif session.active is not vol:
            session.set_active(vol)
        for note in opened.notes:
            self.win.statusBar().showMessage(note, 10000)
        if opened.slice_z is not None and vol.shape[0] > 1:
            _, y, x = session.cursor_zyx
            session.set_cursor_index((opened.slice_z, y, x))
