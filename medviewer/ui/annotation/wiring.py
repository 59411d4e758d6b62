"""AnnotationFeature: the annotation controller, paint tools, panels (segmentation with the
AI proposal box, label history), the Labels menu and its shortcuts, declared to the feature
registry, and the unsaved-edits question as the window's leave guard. Shares the controller
as "labels" (the label map of the active image, which the AI feature proposes labels for)."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QVBoxLayout, QWidget

from medviewer.core import painting

from ..features import DockSpec, FeatureHost
from ..loader import LoadProgress
from ..shortcuts import KEYS
from .case_panel import MAX_SHORTCUTS, CasePanel
from .controller import AnnotationController
from .history_panel import HistoryPanel
from .io_actions import LabelIO, is_dicom_volume
from .label_panel import LabelPanel
from .paint_panel import PaintPanel
from .paint_tool import PaintOptions, PaintTool
from .proposal_layer import ProposalOverlays
from .prompt_wiring import PromptUI
from .proposal_panel import ProposalPanel
from .saving import RESCUE
from .unsaved import UnsavedGuard

PROGRESS_DELAY_MS = 400  # quick jobs finish before a progress bar would flash


class AnnotationFeature:
    name = "annotation"

    def __init__(self, host: FeatureHost):
        self.host = host
        win = host.window
        self.ctl = AnnotationController(host.session, host.bridge, host.services.workspace, win)
        self.options = PaintOptions(win)
        self.paint_tools = {}
        for plane, view in host.views.items():
            view.paint = PaintTool(view, self.ctl, self.options)
            self.paint_tools[plane] = view.paint
        self.last_plane = "axial"  # the view painted (or clicked) last: its normal is used
        self.io = LabelIO(win, self.ctl, host.settings)
        self.unsaved = UnsavedGuard(win, self.ctl)
        self.proposals = ProposalOverlays(host.session, host.views, self.ctl, win)

        self.proposal_panel = ProposalPanel(self.ctl, self, host.session, win)
        self.proposal_panel.show_box.toggled.connect(self.proposals.set_visible)
        self.history_panel = HistoryPanel(self.ctl, self, win)
        self.label_panel = LabelPanel(self.ctl, win)
        self.paint_panel = PaintPanel(self.options, self.ctl, host.session, win)
        self.paint_panel.interpolate.clicked.connect(self.fill_between_slices)
        self.prompt = PromptUI(host, self.ctl, self.proposal_panel)
        seg = QWidget(win)
        seg.setObjectName("segmentationPanel")
        lay = QVBoxLayout(seg)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.proposal_panel)
        lay.addWidget(self.prompt.panel)
        lay.addWidget(self.label_panel, 1)
        lay.addWidget(self.paint_panel)
        self.case_panel = CasePanel(self.ctl, host.session, win)
        reg = host.registry
        reg.dock(DockSpec("caseDock", "Case labels", self.case_panel, tab_with="tagDock",
                          tab_title="Case"))
        reg.dock(DockSpec("segmentationDock", "Segmentation", seg, tab_with="caseDock",
                          tab_title="Seg"))
        reg.dock(DockSpec("historyDock", "Label history", self.history_panel,
                          tab_with="segmentationDock", tab_title="History"))
        reg.raise_dock("segmentationDock")
        reg.provide("labels", self.ctl)
        reg.leave_guard(self.unsaved.confirm)

        self.progress = LoadProgress(win)
        self.progress.setObjectName("annotationProgress")
        self.progress.cancel.clicked.connect(self.ctl.cancel_jobs)
        host.status_bar.addPermanentWidget(self.progress)
        self._busy_text = ("", 0, 0)
        self.workspace_badge = QLabel("", win)
        self.workspace_badge.setObjectName("workspaceProblem")
        self.workspace_badge.setStyleSheet("background: #7a1f1f; color: #ffe0e0; padding: 1px 6px;")
        self.workspace_badge.setVisible(False)
        host.status_bar.addPermanentWidget(self.workspace_badge)
        self._notice = ""  # the workspace problem the banner says
        self._declare_menu()

        self.ctl.sig_voxels_changed.connect(self._on_voxels_changed)
        self.ctl.sig_message.connect(host.status)
        self.ctl.sig_notice.connect(host.show_notice)
        self.ctl.sig_error.connect(host.show_error)
        self.ctl.sig_busy.connect(self._on_busy)
        self.ctl.sig_idle.connect(lambda: self.progress.setVisible(False))
        self.ctl.sig_saved.connect(host.events.sig_record_stored)
        self.ctl.sig_proposal_changed.connect(self._on_proposal)
        self.ctl.sig_workspace_problem.connect(self._on_workspace_problem)
        host.events.sig_record_stored.connect(lambda rec: self.history_panel.refresh())
        self.options.sig_changed.connect(self._show_radius)
        for plane, view in host.views.items():
            view.vb.sig_left.connect(lambda phase, p, plane=plane: self._note_plane(plane))

    @property
    def case_dock(self):
        return self.host.docks.get("caseDock")

    def start(self) -> None:
        """The window built the declared actions: keep them in step with the controller."""
        acts = self.host.actions
        acts["redo"].setShortcuts([QKeySequence(KEYS["redo"]), QKeySequence(KEYS["redo_alt"])])
        self.ctl.sig_undo_changed.connect(self._update_actions)
        self.ctl.sig_labelmap_changed.connect(lambda lm: self._update_actions())
        self.ctl.sig_proposal_changed.connect(lambda p: self._update_actions())
        self.prompt.pc.sig_prompts_changed.connect(self._update_actions)
        self._update_actions()
        self.prompt.start()

    # ------------------------------------------------------------------ menu
    def _declare_menu(self) -> None:
        io, ctl, reg = self.io, self.ctl, self.host.registry
        reg.menu("labels", "&Labels", "labelsMenu", order=10)
        reg.actions("labels", [
            ("labels_new", "&New label map", lambda: ctl.new_labelmap(), "An empty label map on the image"),
            ("labels_import", "&Import label map (NIfTI/NRRD)…", io.import_labelmap_dialog, ""),
            ("labels_import_seg", "Import DICOM &SEG…", io.import_seg_dialog, ""),
            None,
            ("labels_export", "&Export label map (NIfTI/NRRD)…", io.export_labelmap_dialog, ""),
            ("labels_export_seg", "Export DICOM SE&G…", io.export_seg_dialog,
             "Only for images loaded from DICOM"),
            ("labels_export_case", "Export &case labels (CSV/JSON)…", io.export_case_labels_dialog,
             "Every case-label record of the workspace"),
            None,
            ("labels_save", "&Save labels", self.save, "Save as a 'corrected' record (with effort)"),
            ("labels_final", "&Mark final", lambda: ctl.save("final"), "Save as a 'final' record"),
            ("labels_save_as", "Save labels &as… (another workspace)", self.save_as_dialog,
             "Save the labels and their history in another workspace folder and work there "
             "from now on (when this one is read-only or gone)"),
            None,
            ("undo", "&Undo", self.undo, "Undo the last label edit (the last prompt in the Prompt tool)"),
            ("redo", "&Redo", ctl.redo, "Redo"),
            ("radius_down", "Brush radius smaller", lambda: self.options.step_radius(-1), ""),
            ("radius_up", "Brush radius larger", lambda: self.options.step_radius(+1), ""),
            ("fill_between", "&Fill between slices", self.fill_between_slices,
             "Interpolate the active label between annotated slices"),
            None,
            ("proposal_accept", "&Accept proposal", self.accept_all,
             "Merge the whole proposal into the label map (one undo step)"),
            ("proposal_accept_label", "Accept proposal: this &label", self.accept_label,
             "Merge the proposal's label under the cursor (or chosen in the panel)"),
            ("proposal_accept_slice", "Accept proposal: this sl&ice", self.accept_slice,
             "Merge the proposal on the slice of the view used last"),
            ("proposal_reject", "Re&ject proposal", self.reject,
             "Drop the proposal; the label map is not changed"),
            None,
            ("labels_history", "Label &history", self.show_history,
             "Saved records of this image: open, compare, revert"),
        ])
        panel = self.case_panel  # Alt+1 … Alt+9 toggle the first nine case labels
        reg.actions(None, [(f"case_label_{i + 1}", f"Toggle case label {i + 1}",
                            lambda i=i: panel.toggle_index(i), "Case labels panel")
                           for i in range(MAX_SHORTCUTS)])

    def _update_actions(self) -> None:
        acts, ctl = self.host.actions, self.ctl
        has_map, has_image = ctl.labelmap is not None, ctl.volume is not None
        stack = ctl.undo_stack
        for name in ("labels_new", "labels_import", "labels_import_seg"):
            acts[name].setEnabled(has_image)
        for name in ("labels_export", "labels_save", "labels_final", "labels_save_as",
                     "fill_between"):
            acts[name].setEnabled(has_map)
        acts["labels_export_seg"].setEnabled(has_map and is_dicom_volume(ctl.volume))
        for name in ("proposal_accept", "proposal_accept_label", "proposal_accept_slice",
                     "proposal_reject"):
            acts[name].setEnabled(ctl.proposal is not None)
        prompting = self.prompt.active and bool(self.prompt.pc.entries)  # Ctrl+Z: last prompt
        acts["undo"].setEnabled(prompting or (stack is not None and stack.can_undo))
        acts["redo"].setEnabled(stack is not None and stack.can_redo)

    # ------------------------------------------------------------------ reactions
    def _on_voxels_changed(self, indices) -> None:
        for view in self.host.views.values():
            view.refresh_overlay(indices)

    def _note_plane(self, plane: str) -> None:
        self.last_plane = plane

    def _on_busy(self, message: str, done: int, total: int) -> None:
        self._busy_text = (message, done, total)
        if self.progress.isVisible():
            self.progress.show_progress(message, done, total)
        else:
            QTimer.singleShot(PROGRESS_DELAY_MS, self._maybe_show_progress)

    def _maybe_show_progress(self) -> None:
        if self.ctl.busy:
            self.progress.show_progress(*self._busy_text)

    def _show_radius(self) -> None:
        self.host.status(f"Brush radius {self.options.radius_mm:g} mm"
                         + (" (3D sphere)" if self.options.sphere else ""), 3000)

    def on_tool_changed(self, name: str) -> None:
        for tool in self.paint_tools.values():
            if name != "polygon":
                tool.cancel()
            tool.hover(name, None)
        self.prompt.on_tool_changed(name)
        self._update_actions()

    def _on_workspace_problem(self, message: str) -> None:
        """The workspace cannot be written (or, with "", can again): a badge in the status
        bar while it lasts, and a line in the banner."""
        self.workspace_badge.setText(f"\u26a0 {message}" if message else "")
        self.workspace_badge.setToolTip(RESCUE if message else "")
        self.workspace_badge.setVisible(bool(message))
        notice = f"{message}. Painting goes on in memory; {RESCUE}" if message else ""
        if notice != self._notice:
            if self._notice:
                self.host.withdraw_notice(self._notice)
            if notice:
                self.host.show_notice(notice)
            self._notice = notice

    def save_as_dialog(self) -> None:
        """Ctrl+Alt+S: choose a folder, then :meth:`save_as`."""
        folder = QFileDialog.getExistingDirectory(
            self.host.window, "Save labels in another workspace folder",
            str(self.ctl.workspace.parent))
        if folder:
            self.save_as(folder)

    def save_as(self, folder: str):
        """Save every open label map, with its history, in the workspace ``folder`` and work
        there from now on (the rescue of a read-only or vanished workspace)."""
        if self.ctl.labelmap is None and not self.ctl.dirty_states():
            self.ctl.sig_message.emit("No label map to save")
            return None
        return self.ctl.save_as(folder)

    def _on_proposal(self, prop) -> None:
        if prop is not None:
            self.host.docks["segmentationDock"].raise_()  # the Accept / Reject buttons

    # ------------------------------------------------------------------ commands
    def save(self):
        """Ctrl+S: the label map and the case labels, each only if it changed."""
        ctl, st = self.ctl, self.ctl.state
        jobs = [ctl.save("corrected", quiet=True)]
        if st is not None and st.case_labels is not None and not st.case_labels.is_empty():
            jobs.append(ctl.save_case_labels("corrected", quiet=True))
        jobs = [j for j in jobs if j is not None]
        if not jobs:
            ctl.sig_message.emit("No changes since the last save: nothing stored"
                                 if st is not None and st.labelmap is not None
                                 else "Nothing to save")
        return jobs

    def undo(self):
        """Ctrl+Z: the last prompt while prompting, else the last label edit."""
        return None if self.prompt.undo() else self.ctl.undo()

    def accept_all(self):
        if self.prompt.pc.owns_proposal():  # a prompt result: its record is kept too
            return self.prompt.prompt_accept()
        return self.ctl.accept_proposal_in_background(
            replace=self.proposal_panel.replace.isChecked())

    def accept_label(self):
        value = self.proposal_panel.chosen_label()
        if value is None:
            self.ctl.sig_message.emit("No proposal to accept")
            return None
        return self.ctl.accept_proposal_in_background(
            value=int(value), replace=self.proposal_panel.replace.isChecked())

    def accept_slice(self):
        """Accept the proposal on the slice shown in the view used last."""
        view = self.host.views[self.last_plane]
        if view.reslicer is None:
            return None
        axis = view.reslicer.fixed_axis(self.last_plane)
        index = int(self.host.session.cursor_zyx[axis])
        return self.ctl.accept_proposal_in_background(
            axis=axis, index=index, replace=self.proposal_panel.replace.isChecked())

    def reject(self):
        if self.prompt.pc.owns_proposal():
            return self.prompt.prompt_reject()
        return self.ctl.reject_proposal()

    def show_history(self) -> None:
        dock = self.host.docks["historyDock"]
        dock.show()
        dock.raise_()
        self.history_panel.refresh()

    def open_record(self, record_id: str) -> None:
        """Open a stored record as the label map (asks about unsaved strokes first)."""
        if self.unsaved.confirm("opening another record", lambda: self.ctl.open_record(record_id)):
            self.ctl.open_record(record_id)

    def revert_to(self, record_id: str) -> None:
        """Store a record again as a new one (asks about unsaved strokes first)."""
        if self.unsaved.confirm("reverting", lambda: self.ctl.revert_to(record_id)):
            self.ctl.revert_to(record_id)

    def fill_between_slices(self):
        """Interpolate the active label along the normal of the view used last (bridge job)."""
        ctl = self.ctl
        lm = ctl.labelmap
        if lm is None:
            ctl.sig_message.emit("No label map: paint a few slices first")
            return None
        view = self.host.views[self.last_plane]
        axis = view.reslicer.fixed_axis(self.last_plane)
        sx, sy, sz = lm.geometry.spacing
        sampling = tuple(s for a, s in enumerate((sz, sy, sx)) if a != axis)
        value, snapshot = ctl.active_label, lm.labels.copy()

        def work(reporter):
            return painting.interpolate_between_slices(snapshot, value, axis, sampling)

        def done(res):
            idx, _ = res
            if idx.size == 0:
                ctl.sig_message.emit("Fill between slices: paint the label on two slices with a gap")
                return
            ctl.apply_voxels(idx, value, "interpolate")
            ctl.sig_message.emit(f"Filled {idx.size} voxels between slices ({self.last_plane} normal)")

        return ctl.submit(work, "interpolate", done, "Filling between slices…")

    def shutdown(self) -> None:
        self.ctl.cancel_jobs()
        self.ctl.shutdown()
