"""FindingsFeature: the Findings dock (one finding per connected component of a label of the
label map being edited, or of the model's proposal), kept up to date after edits (debounced,
measured on a worker), a click or Enter on a finding moves the cursor to it and draws its
long and short axis; the Findings menu exports CSV, JSON and a DICOM SR with its SEG.
Uses the annotation controller the annotation feature shares as "labels"."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import numpy as np

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFileDialog

from medviewer.services import findings as svc
from medviewer.services.annotations import is_dicom_volume

from .. import settings as st
from ..features import DockSpec, FeatureHost
from .diameters import DiameterLines, slice_plane_view
from .panel import FindingsPanel

DEBOUNCE_MS = 400  # edits arriving closer than this are measured once
MAX_TRACKED_EDIT = 2_000_000  # a larger edit re-measures every label (not worth sorting it)


class FindingsFeature:
    name = "findings"

    def __init__(self, host: FeatureHost):
        self.host = host
        self.labels_ctl = host.get("labels")
        self.panel = FindingsPanel(host.window)
        self.lines = DiameterLines(host.views, host.session)
        self.findings: list = []
        self._job = None
        self._pending = False
        # label values edited since the last measurement (None: measure every label); edits
        # can arrive from a worker (a background accept), hence the lock
        self._changed: Optional[set] = None
        self._lock = threading.Lock()
        self._basis = None  # (volume, source, label map or proposal) of the findings shown
        self._watched = None  # the LabelMap whose edits are followed
        self._stale = True  # changes not measured yet (the dock was hidden)
        self._forced = False  # measure at the next refresh even while hidden
        self.timer = QTimer(host.window)
        self.timer.setObjectName("findingsDebounce")
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.refresh)
        reg = host.registry
        reg.dock(DockSpec("findingsDock", "Findings", self.panel, tab_with="historyDock",
                          tab_title="Findings"))
        reg.menu("findings", "F&indings", "findingsMenu", order=15)
        reg.actions("findings", [
            ("findings_refresh", "&Measure now", self.measure_now,
             "Measure every finding again"),
            None,
            ("findings_export_csv", "Export findings as &CSV…", lambda: self.export_dialog("csv"), ""),
            ("findings_export_json", "Export findings as &JSON…", lambda: self.export_dialog("json"), ""),
            ("findings_export_sr", "Export findings as DICOM &SR…", lambda: self.export_dialog("sr"),
             "A DICOM SR (TID 1500 measurement report) and the DICOM SEG it references"),
        ])
        self.panel.sig_jump.connect(self.jump_to_row)
        self.panel.sig_source.connect(lambda key: self.schedule(now=True))
        self.panel.sig_export.connect(self.export_dialog)
        self.panel.sig_compare.connect(self.compare_with_proposal)
        self.changes_dialog = None
        ctl = self.labels_ctl
        ctl.sig_voxels_changed.connect(lambda idx: self.schedule())
        ctl.sig_labelmap_changed.connect(self._on_labelmap)
        ctl.sig_table_changed.connect(lambda: self.schedule(everything=True))
        ctl.sig_proposal_changed.connect(lambda p: self._on_proposal())

    def start(self) -> None:
        self.dock.visibilityChanged.connect(self._on_visible)
        self.schedule(now=True)

    @property
    def dock(self):
        return self.host.docks["findingsDock"]

    @property
    def shown(self) -> bool:
        """Whether the dock is on screen (a tab behind another is not)."""
        return self.dock.isVisible() and not self.dock.visibleRegion().isEmpty()

    def _on_visible(self, visible: bool) -> None:
        if visible and self._stale:
            self.schedule(now=True)

    def shutdown(self) -> None:
        self.timer.stop()
        self._pending = False
        self._on_labelmap(None, schedule=False)
        if self._job is not None:
            self._job.cancel()

    # ------------------------------------------------------------------ changes
    def _on_labelmap(self, lm, schedule: bool = True) -> None:
        if self._watched is not None:
            self._watched.edited.disconnect(self._on_edit)
        self._watched = lm
        if lm is not None:
            lm.edited.connect(self._on_edit)
        if schedule:
            self.schedule(now=True, everything=True)

    def _on_edit(self, edit) -> None:
        """Remember which labels an edit touched (any thread; the controller's
        sig_voxels_changed schedules the measurement on the GUI thread)."""
        big = len(edit.indices) > MAX_TRACKED_EDIT
        values = set() if big else set(np.unique(edit.old).tolist()) | set(np.unique(edit.new).tolist())
        with self._lock:
            if big:
                self._changed = None
            elif self._changed is not None:
                self._changed |= values - {0}

    # ------------------------------------------------------------------ measuring
    def _source(self):
        """(labels reader, table, source key, the object measured) now, or None."""
        ctl = self.labels_ctl
        if self.panel.source_key == "proposal":
            prop = ctl.proposal
            if prop is None:
                return None
            return (lambda: prop.labels), dict(prop.table), "proposal", prop
        lm = ctl.labelmap
        if lm is None:
            return None
        return lm.snapshot, lm.table.to_dict(), "labels", lm  # snapshot: on the worker

    def _on_proposal(self) -> None:
        if self.panel.source_key == "proposal":
            self.schedule(now=True, everything=True)

    def measure_now(self) -> None:
        """Every label, at once, shown or not."""
        self._forced = True
        self.schedule(now=True, everything=True)

    def schedule(self, now: bool = False, everything: bool = False) -> None:
        """Measure again after the edits settle (``now``: at the next turn of the loop;
        ``everything``: every label, not only those edited)."""
        if everything:
            with self._lock:
                self._changed = None
        self.timer.start(0 if now else DEBOUNCE_MS)

    def refresh(self) -> None:
        """Measure now: every label, or only the labels edited since the findings shown.
        Nothing is measured while the dock is hidden: it is measured when it shows."""
        if self._job is not None:  # one measurement at a time: again once it ends
            self._pending = True
            return
        if not self.shown and not self._forced:
            self._stale = True
            return
        self._stale = self._forced = False
        vol, src = self.labels_ctl.volume, self._source()
        if vol is None or src is None:
            self._basis = None
            self._show([], "No label map" if vol is not None else "")
            return
        read, table, key, obj = src
        basis = (id(vol), key, id(obj))
        with self._lock:
            changed, self._changed = self._changed, set()
        update = None
        if changed is not None and basis == self._basis:
            if not changed:
                return  # nothing edited since (e.g. a pause in the middle of a stroke)
            update = (list(self.findings), changed)

        def work(reporter):
            return svc.case_findings(vol, read(), table, source=key, reporter=reporter,
                                     update=update)

        self.panel.status.setText("Measuring…")
        self._job = self.host.bridge.submit(
            work, "findings", on_done=lambda res: self._done(res, vol, basis),
            on_error=lambda msg: self._ended(f"Measuring failed: {msg}"),
            on_cancelled=lambda: self._ended("Measuring cancelled"))

    def _ended(self, text: str) -> None:
        self._job = None
        with self._lock:
            self._changed = None  # what that job was to measure is still to do
        self.panel.status.setText(text)
        if self._pending:
            self._pending = False
            self.refresh()

    def _done(self, findings: list, vol, basis) -> None:
        self._job = None
        src = self._source()
        if vol is self.labels_ctl.volume and src is not None and basis[1:] == (src[2], id(src[3])):
            self._basis = basis
            self._show(findings, "")
        else:
            self._basis = None
        if self._pending:  # changed while measuring
            self._pending = False
            self.refresh()

    def _show(self, findings: list, note: str) -> None:
        self.findings = list(findings)
        view = slice_plane_view(self.host.views)
        numbering = getattr(view, "numbering", None)
        self.panel.set_findings(self.findings, None if numbering is None else numbering.position)
        n = len(self.findings)
        self.panel.status.setText(note or f"{n} finding{'s' if n != 1 else ''} "
                                           "(26-connected components)")
        sel = self.panel.selected()
        if self.lines.finding is not None:
            self.lines.show(sel)  # the selected finding's new axes, or none

    # ------------------------------------------------------------------ navigation
    def jump_to_row(self, row: int) -> None:
        if not 0 <= row < len(self.findings):
            return
        f = self.findings[row]
        self.host.session.set_cursor_index(f.centre_zyx)
        self.lines.show(f)
        self.host.status(f"Finding {f.number}: {f.name}, long axis {f.long_mm:.1f} mm, "
                         f"short axis {f.short_mm:.1f} mm, {f.volume_ml:.2f} ml")

    # ------------------------------------------------------------------ follow-up
    def compare_with_proposal(self):
        """The label map's findings (baseline) matched with the proposal's (follow-up) on a
        worker, shown in a dialog with their change."""
        ctl = self.labels_ctl
        vol, lm, prop = ctl.volume, ctl.labelmap, ctl.proposal
        if vol is None or lm is None or prop is None:
            self.host.status("Compare needs a label map and a proposal on the image (e.g. "
                             "Registration > Carry labels over from a follow-up)")
            return None
        read, table, ptable = lm.snapshot, lm.table.to_dict(), dict(prop.table)

        def work(reporter):
            from medviewer.core.findings import match_findings

            base = svc.case_findings(vol, read(), table, reporter=reporter)
            follow = svc.case_findings(vol, prop.labels, ptable, source="proposal",
                                       reporter=reporter)
            return match_findings(base, follow)

        return ctl.submit(work, "findings-compare", self._show_changes, "Comparing findings…")

    def _show_changes(self, changes: list) -> None:
        from .compare import ChangesDialog

        if self.changes_dialog is not None:
            self.changes_dialog.close()
        dlg = ChangesDialog(changes, self.host.window)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.destroyed.connect(lambda *_: setattr(self, "changes_dialog", None))
        self.changes_dialog = dlg
        dlg.show()

    # ------------------------------------------------------------------ export
    def export_dialog(self, kind: str) -> None:
        if self._stale or self._job is not None or self.timer.isActive():
            self.dock.show()
            self.dock.raise_()
            self.host.status("The findings are being measured: export them once the list is "
                             "up to date")
            self.measure_now() if self._stale else None
            return
        if not self.findings:
            self.host.status("No findings to export")
            return
        vol = self.labels_ctl.volume
        if kind == "sr" and not is_dicom_volume(vol):
            self.host.show_error("DICOM SR export", "A DICOM SR of findings needs an image "
                                 "loaded from DICOM files; this one is not. Export CSV or JSON.")
            return
        suggestion, filt = {"csv": ("findings.csv", "CSV (*.csv)"),
                            "json": ("findings.json", "JSON (*.json)"),
                            "sr": ("findings_sr.dcm", "DICOM (*.dcm)")}[kind]
        folder = str(self.labels_ctl.workspace)
        path, _ = QFileDialog.getSaveFileName(self.host.window, "Export findings",
                                              str(Path(folder) / suggestion), filt)
        if path:
            self.export(kind, path)

    def export(self, kind: str, path) -> Optional[object]:
        """Write the findings shown (``kind`` csv/json/sr) on a worker."""
        findings, vol = list(self.findings), self.labels_ctl.volume
        anonymise = st.anonymise_exports(self.host.settings)
        keys = self.labels_ctl.workspace
        src = self._source() if kind == "sr" else None
        if kind == "sr" and src is None:
            return None

        def work(reporter):
            if kind == "sr":
                read, table = src[0], src[1]
                return svc.export_findings_sr(findings, read(), table, vol, path,
                                              anonymise=anonymise, key_folder=keys)[0]
            return svc.export_findings(findings, path, vol, anonymise=anonymise, key_folder=keys)

        return self.labels_ctl.submit(
            work, f"export-findings-{kind}",
            lambda p: self.host.status(f"Wrote findings {Path(p).name}"),
            "Writing findings…")
