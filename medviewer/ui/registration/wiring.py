"""RegistrationFeature: the Registration menu ("Register series…", fusion on/off, its mode
and blend, carry labels over, save the transform, export the registered series), the
Registration dock, and the fused display in the three planes.

A finished registration adds the registered moving series to the session as a new derived
series (on the fixed series' grid; the moving series is never changed) and shows it fused
over the fixed one. Labels carried over become a proposal on the fixed series (the
annotation feature's "labels" controller): accepting it keeps the voxels a person labelled
unless asked to replace them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from PySide6.QtWidgets import QFileDialog

from medviewer.core.proposal import Proposal
from medviewer.core.volume import Volume
from medviewer.services import registration as reg

from ..features import DockSpec, FeatureHost
from ..triplanar import shown_description
from .dialog import RegisterDialog, error_sentence, provenance_text
from .fusion import MODES, Fusion, FusionOverlays
from .panel import FusionPanel

BLEND_STEP = 0.1


@dataclass
class Registered:
    fixed: Volume
    moving: Volume
    result: object  # services.registration.RegistrationResult
    volume: Volume  # the moving series resampled onto the fixed grid


class RegistrationFeature:
    name = "registration"

    def __init__(self, host: FeatureHost):
        self.host = host
        win = host.window
        self.labels = host.get("labels", None)  # the annotation feature's label controller
        self.fusion = Fusion(win)
        self.overlays = FusionOverlays(host.session, host.views, self.fusion, win)
        self.panel = FusionPanel(self.fusion, win)
        self.pairs: List[Registered] = []
        self.dialog: Optional[RegisterDialog] = None
        self.jobs: list = []
        reg_ = host.registry
        reg_.menu("registration", "Re&gistration", "registrationMenu", order=60)
        reg_.actions("registration", [
            ("register_series", "&Register series…", self.open_dialog,
             "Align a moving series to a fixed one (rigid, affine, deformable) and show it fused"),
            None,
            ("fusion_toggle", "Show &fused", self.toggle_fusion,
             "The registered series over the fixed one in the three planes, or the fixed alone"),
            ("fusion_mode", "Next fusion &mode", self.next_mode,
             "Blend, checkerboard, swipe"),
            ("fusion_blend_down", "Blend: less registered", lambda: self.step_blend(-1),
             f"{int(BLEND_STEP * 100)} % less of the registered series"),
            ("fusion_blend_up", "Blend: more registered", lambda: self.step_blend(+1),
             f"{int(BLEND_STEP * 100)} % more of the registered series"),
            None,
            ("registration_carry_labels", "&Carry labels over", self.carry_labels,
             "The moving series' label map onto the fixed series, as a proposal"),
            ("registration_save_transform", "Save &transform…", self.save_transform_dialog,
             "The transform as an ITK .tfm file with its provenance (.tfm.json)"),
            ("registration_export", "&Export registered series…", self.export_dialog,
             "The registered series as NIfTI, on the fixed series' grid"),
        ], checkable=("fusion_toggle",))
        reg_.dock(DockSpec("registrationDock", "Registration", self.panel, tab_with="tagDock",
                           hidden=True, tab_title="Reg"))
        self.panel.carry.clicked.connect(self.carry_labels)
        self.panel.save_transform.clicked.connect(self.save_transform_dialog)
        self.panel.export.clicked.connect(self.export_dialog)
        self.panel.sig_show.connect(self.show_series)
        self.fusion.sig_changed.connect(self._sync_actions)

    def start(self) -> None:
        self._sync_actions()

    # ------------------------------------------------------------------ helpers
    def _describe(self, volume: Volume) -> str:
        privacy = self.host.privacy
        return shown_description(volume, privacy is not None and privacy.hidden)

    @property
    def current(self) -> Optional[Registered]:
        return self.pairs[-1] if self.pairs else None

    def _sync_actions(self) -> None:
        have = self.current is not None
        acts = self.host.actions
        for name in ("fusion_toggle", "fusion_mode", "fusion_blend_down", "fusion_blend_up",
                     "registration_carry_labels", "registration_save_transform",
                     "registration_export"):
            if name in acts:
                acts[name].setEnabled(have)
        act = acts.get("fusion_toggle")
        if act is not None and act.isChecked() != self.fusion.enabled:
            act.setChecked(self.fusion.enabled)

    def _error(self, message: str) -> None:
        self.host.show_error("Registration", message)

    def _submit(self, fn, name: str, done, failed_title: str):
        holder = []

        def finish():
            if holder and holder[0] in self.jobs:
                self.jobs.remove(holder[0])

        job = self.host.bridge.submit(
            fn, name, on_done=lambda res: (finish(), done(res)),
            on_error=lambda msg: (finish(), self.host.show_error(failed_title,
                                                                  error_sentence(msg))),
            on_cancelled=finish)
        holder.append(job)
        self.jobs.append(job)
        return job

    # ------------------------------------------------------------------ registering
    def open_dialog(self) -> Optional[RegisterDialog]:
        vols = list(self.host.session.volumes)
        if len(vols) < 2:
            self._error("Open two series first: registration aligns a moving series to a fixed one.")
            return None
        old = self.dialog
        if old is not None and old.running:
            old.raise_()
            return old
        if old is not None:  # a new one lists the series open now
            old.close()
            old.deleteLater()
        dlg = RegisterDialog(vols, self.host.bridge, self._describe, self.host.session.active,
                             self.host.window)
        dlg.sig_done.connect(self._on_registered)
        self.dialog = dlg
        dlg.setModal(False)  # the views stay usable while it runs
        dlg.show()
        dlg.raise_()
        return dlg

    def _on_registered(self, fixed: Volume, moving: Volume, result, registered: Volume) -> None:
        session = self.host.session
        if not any(v is fixed for v in session.volumes):
            return  # the fixed series was closed meanwhile
        self.pairs.append(Registered(fixed, moving, result, registered))
        if self.host.add_series is not None:  # listed in the series browser too
            self.host.add_series(registered, fixed)
        else:
            session.add_volume(registered, activate=False)
        self.fusion.set_pair(fixed, registered)
        self.panel.pair_label.setText(
            f"Fixed: {self._describe(fixed) or fixed.modality}\n"
            f"Registered: {registered.description}")
        self.panel.provenance.setText(provenance_text(result))
        self.panel.provenance.setToolTip(result.stop_reason)
        dock = self.host.docks.get("registrationDock")
        if dock is not None:
            dock.show()
            dock.raise_()
        self.show_series("fixed", then_fuse=True)
        self.host.status(f"Registered: {registered.description} — {provenance_text(result)}")

    def show_series(self, which: str, then_fuse: bool = False) -> None:
        """Make the fixed (the fusion shows on it) or the registered series active."""
        pair = self.current
        if pair is None:
            return
        target = pair.fixed if which == "fixed" else pair.volume
        session = self.host.session

        def go():
            if session.active is not target:
                lps = session.cursor_lps  # the crosshair stays on the same physical point
                session.set_active(target)
                if lps is not None:
                    session.set_cursor_lps(lps)
            if then_fuse:
                self.fusion.set_enabled(True)

        if session.active is target or self.host.confirm_leave("showing another series", go):
            go()

    # ------------------------------------------------------------------ fusion controls
    def toggle_fusion(self) -> None:
        if self.current is None:
            return
        on = not self.fusion.enabled
        if on and self.host.session.active is not self.current.fixed:
            self.show_series("fixed", then_fuse=True)
            return
        self.fusion.set_enabled(on)

    def next_mode(self) -> None:
        modes = list(MODES)
        self.fusion.set_mode(modes[(modes.index(self.fusion.mode) + 1) % len(modes)])
        self.host.status(f"Fusion: {MODES[self.fusion.mode]}", 3000)

    def step_blend(self, sign: int) -> None:
        self.fusion.set_mode("blend")
        self.fusion.set_blend(round(self.fusion.blend + sign * BLEND_STEP, 3))
        self.host.status(f"Blend: {int(round(self.fusion.blend * 100))} % registered", 3000)

    # ------------------------------------------------------------------ labels
    def carry_labels(self):
        """The moving series' label map, moved by the transform onto the fixed series (nearest
        neighbour, on a worker), becomes a proposal there: the fixed series' own labels are
        only changed when the user accepts it."""
        pair, ctl = self.current, self.labels
        if pair is None:
            self._error("Register two series first.")
            return None
        lm = None if ctl is None else ctl.labelmap_of(pair.moving)
        if lm is None or not lm.labels.any():
            self._error("The moving series has no labels to carry over: open or paint a "
                        "label map on it first.")
            return None
        table = lm.table.to_dict()
        moving_geo, fixed_geo, transform = pair.moving.geometry, pair.fixed.geometry, \
            pair.result.transform
        source = f"registration ({pair.result.kind}) from {self._describe(pair.moving) or 'the moving series'}"

        def work(reporter):
            reporter(0, 1, "Moving the labels onto the fixed series")
            moved = reg.resample_labels(lm.snapshot(), moving_geo, fixed_geo, transform)
            return Proposal.make(moved, table, "", source)

        def done(prop: Proposal) -> None:
            fixed = pair.fixed

            def propose():
                ctl.show_proposal(fixed, prop)
                self.host.status("Labels carried over as a proposal on the fixed series: "
                                 "Accept or Reject it (its own labels are unchanged until "
                                 "you accept)", 10000)

            if self.host.session.active is fixed:
                propose()
            elif self.host.confirm_leave("showing the fixed series", lambda: (
                    self.host.session.set_active(fixed), propose())):
                self.host.session.set_active(fixed)
                propose()

        return self._submit(work, "carry-labels", done, "Could not carry the labels over")

    # ------------------------------------------------------------------ files
    def _folder(self) -> str:
        from .. import settings as st

        return st.last_folder(self.host.settings)

    def _ask_path(self, title: str, name: str, filters: str) -> str:
        if self.current is None:
            return ""
        path, _ = QFileDialog.getSaveFileName(self.host.window, title,
                                              str(Path(self._folder()) / name), filters)
        return path

    def _write(self, write, name: str, done: str, failed: str):
        """``write(pair)`` on a worker for the current pair (a file written atomically)."""
        pair = self.current
        if pair is None:
            self._error("Register two series first.")
            return None
        return self._submit(lambda reporter: write(pair), name,
                            lambda out: self.host.status(f"{done} {out}"), failed)

    def save_transform_dialog(self) -> None:
        path = self._ask_path("Save transform", "registration.tfm",
                              "ITK transform (*.tfm *.txt *.h5)")
        if path:
            self.save_transform(path)

    def save_transform(self, path):
        """The current transform as an ITK transform file with its provenance beside it
        (``PATH.json``), both written atomically on a worker."""
        return self._write(lambda pair: reg.save_transform(pair.result, path), "save-transform",
                           "Saved", "Could not save the transform")

    def export_dialog(self) -> None:
        path = self._ask_path("Export registered series", "registered.nii.gz",
                              "NIfTI (*.nii.gz *.nii)")
        if path:
            self.export(path)

    def export(self, path):
        """The registered series as NIfTI (atomically, patient details left out)."""
        return self._write(lambda pair: reg.write_series(pair.volume, path), "export-registered",
                           "Exported", "Could not export the registered series")

    def shutdown(self) -> None:
        if self.dialog is not None and self.dialog.job is not None:
            self.dialog.job.cancel()
        for job in list(self.jobs):
            job.cancel()
