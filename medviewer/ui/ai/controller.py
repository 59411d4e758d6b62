"""AiController: what the AI panel and menu do — pick a model, run it on the AI worker, turn
the results into 'predicted' records, proposals over the label map, heat overlays and reviews.

GUI thread only; the work itself is in :mod:`medviewer.services.ai_runs` (the same code path
as ``medviewer predict``) and runs on the :class:`AiWorker`. A segmentation becomes a proposal
of the annotation controller the main window hands in (``labels``), never written over a
person's labels; records are stored in the shared Workspace's label store."""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from medviewer.services.ai_runs import (SALIENCY_METHODS, UNCERTAINTY_METHODS,
                                        ClassificationRun, SegmentationRun, classify_job,
                                        review_payload, segment_job, uncertainty_available)
from medviewer.services.annotations import store_case_labels
from medviewer.services.model_fit import DomainFit, fits_by_ref
from medviewer.services.models import ModelCatalog

from ..qt_jobs import QtJobBridge
from . import settings as ai_settings
from .overlays import HeatMap, HeatOverlays
from .saliency_control import SaliencyControl
from .trust import trust_note
from .worker import AiWorker


class AiController(SaliencyControl, QObject):
    sig_models = Signal(list)  # ModelCards
    sig_selected = Signal(object)  # ModelCard or None
    sig_running = Signal(bool)
    sig_progress = Signal(str, int, int)  # message, done, total
    sig_status = Signal(str)
    sig_classification = Signal(object)  # ClassificationRun or None
    sig_segmentation = Signal(object)  # SegmentationRun
    sig_reviewed = Signal(object)  # the review Record
    sig_device = Signal(str)  # device label
    sig_fits = Signal(dict)  # {card.ref: DomainFit} for the active image
    sig_error = Signal(str, str)
    sig_model_created = Signal(object)  # the ModelCard of a new (untrained) model

    def __init__(self, session, labels, heat: HeatOverlays, settings, workspace,
                 catalog: ModelCatalog, bridge: QtJobBridge, parent=None):
        super().__init__(parent)
        self.session, self.annotation, self.heat, self.settings = session, labels, heat, settings
        self.workspace, self.catalog, self.bridge = workspace, catalog, bridge
        self.worker = AiWorker(self)
        self.worker.set_device_preference(ai_settings.device_preference(settings))
        self.worker.set_precision_preference(
            "fp32" if ai_settings.force_fp32(settings) else "auto")
        self.worker.sig_device.connect(lambda dev, label: self._set_device_label(label))
        self.worker.sig_busy_changed.connect(self.sig_running)
        self.worker.sig_progress.connect(lambda name, p: self.sig_progress.emit(p.message, p.done, p.total))
        self.cards: list = []
        self.fits: dict = {}  # {card.ref: DomainFit} of the active image
        self.active_refs: set = set()  # the active version of each model
        self.card = None
        self.device_label = ""
        self.last_class: Optional[ClassificationRun] = None
        self.last_class_volume = None
        self.last_seg: Optional[SegmentationRun] = None
        self.last_seg_volume = None
        self.saliency_method = SALIENCY_METHODS[0][0]
        self.want_saliency = False
        self.want_uncertainty = False  # off by default: the labels are what is shown first
        self.uncertainty_method = "entropy"  # or "mc_dropout" / "tta" (segmentation runs)
        self.reviewed = False
        self._shown_at = 0.0
        session.active_changed.connect(self._on_active_changed)

    # ------------------------------------------------------------------ models
    @property
    def registry(self):
        """The ModelRegistry behind the shared catalogue (tests move pointers through it)."""
        return self.catalog.registry

    def refresh_models(self, select: Optional[str] = None) -> List:
        catalog = self.catalog.reload()
        try:
            self.cards = catalog.automatic()  # not the promptable model (Prompt tool only)
        except Exception as exc:  # a broken user folder must not stop the app
            self.cards = []
            self.sig_error.emit("Could not list the models", f"{type(exc).__name__}: {exc}")
        for folder, msg in catalog.problems:
            self.sig_status.emit(f"Model folder refused: {msg}")
        # default to each model's ACTIVE version; a selection that was the active version
        # follows the pointer (e.g. after a fine-tune was promoted)
        was_active = self.card is not None and self.card.ref in self.active_refs
        self.active_refs = set(catalog.active_refs(self.cards).values())
        self.fits = fits_by_ref(self.cards, self.session.active)
        self.sig_models.emit(self.cards)
        keep = select or (self.card.ref if self.card is not None else None)
        if select is None and was_active:
            keep = next((r for r in self.active_refs if r.split(":")[0] == self.card.name), keep)
        if select is None and not self.fits_image(keep):
            keep = self.default_ref()
        self.select(keep)
        return self.cards

    def fit_of(self, ref: Optional[str]) -> DomainFit:
        """Whether model ``ref`` fits the active image (with the reason when it does not)."""
        return self.fits.get(ref) or DomainFit(True)

    def fits_image(self, ref: Optional[str]) -> bool:
        return ref in {c.ref for c in self.cards} and self.fit_of(ref).fits

    def default_ref(self) -> Optional[str]:
        """The first model (its active version) that fits the active image, models without
        domain cautions and not superseded by a listed model first; None if none."""
        names = {c.name for c in self.cards}
        fitting = [c.ref for c in sorted(
            (c for c in self.cards if self.fit_of(c.ref).fits),
            key=lambda c: (bool(self.fit_of(c.ref).notes), c.superseded_by in names))]
        return next((r for r in fitting if r in self.active_refs), fitting[0] if fitting else None)

    def _update_fits(self) -> None:
        """Re-check every model against the active image; keep a fitting selection."""
        self.fits = fits_by_ref(self.cards, self.session.active)
        self.sig_fits.emit(self.fits)
        if self.card is None or not self.fits_image(self.card.ref):
            self.select(self.default_ref())
            if self.card is None and self.cards:
                self.sig_status.emit("No model fits this image (hover a greyed model for why)")

    def select(self, ref: Optional[str]) -> None:
        self.card = next((c for c in self.cards if c.ref == ref), None)
        self.sig_selected.emit(self.card)

    def import_folder(self, path: str):
        """Validate and copy a model folder into the user models folder (on the AI worker:
        checking that the network builds needs torch)."""
        catalog = self.catalog

        def work(ctx):
            ctx.progress(0, 1, "Checking the model folder…")
            return catalog.import_folder(path)

        def done(card):
            from medviewer.services.models import is_automatic

            self.sig_status.emit(f"Imported {card.ref}" + (
                "" if is_automatic(card) else " (untrained: fine-tune it first)"
                if card.untrained else
                f" ({card.task}: it runs from the Prompt tool, not from this panel)"))
            self.refresh_models(select=card.ref)

        return self._submit(work, "ai-import", done, "Could not import the model")

    def create_model(self, options, on_done=None, on_error=None):
        """Make a new model's untrained first version (:meth:`ModelCatalog.create`, on the AI
        worker: it builds the network); ``on_done((card, report))`` / ``on_error(message)``
        after the status line. The job, or None when the worker is busy."""
        catalog = self.catalog

        def work(ctx):
            ctx.progress(0, 1, f"Making the model {options.name}…")
            return catalog.create(options)

        def done(result):
            card = result[0]
            self.sig_status.emit(f"Made {card.ref} (untrained): import labels, then fine-tune "
                                 f"it (AI > Fine-tune…)")
            self.refresh_models()
            self.sig_model_created.emit(card)
            if on_done is not None:
                on_done(result)

        def failed(msg: str):
            self.sig_status.emit(f"Could not make the model: {msg.splitlines()[0]}")
            if on_error is not None:
                on_error(msg)

        job = self.worker.submit(work, "ai-new-model", on_done=done, on_error=failed,
                                 on_cancelled=lambda: self.sig_status.emit("Cancelled"))
        if job is None:
            self.sig_status.emit("The AI worker is busy: wait for the running job or cancel it")
        return job

    # ------------------------------------------------------------------ device
    def set_device_preference(self, pref: str) -> None:
        ai_settings.set_device_preference(self.settings, pref)
        self.worker.set_device_preference(pref)
        self._set_device_label(self.initial_device_label(pref))

    def set_force_fp32(self, on: bool) -> None:
        """Full precision for every model from the next job on (saved in the settings)."""
        ai_settings.set_force_fp32(self.settings, bool(on))
        self.worker.set_precision_preference("fp32" if on else "auto")

    def initial_device_label(self, pref: Optional[str] = None) -> str:
        """The device label before torch is loaded (exact for the CPU)."""
        pref = pref or self.worker.device_preference
        avail = ai_settings.available_devices()
        if pref in ("cuda", "mps") and avail[pref]:
            return f"{pref.upper()} (checked when a model runs)"
        if pref == "auto" and (avail["cuda"] or avail["mps"]):
            return "Auto: a GPU, if usable (checked when a model runs)"
        return ai_settings.cpu_label()

    def _set_device_label(self, label: str) -> None:
        self.device_label = label
        self.sig_device.emit(label)

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.worker.busy

    def cancel(self) -> None:
        if self.worker.busy:
            self.sig_status.emit("Cancelling…")
            self.worker.cancel()

    def _submit(self, fn, name: str, on_done, error_title: str, on_cancelled=None):
        job = self.worker.submit(
            fn, name, on_done=on_done,
            on_error=lambda msg: (self.sig_status.emit(f"{error_title}: {msg.splitlines()[0]}"),
                                  self.sig_error.emit(error_title, msg)),
            on_cancelled=on_cancelled or (lambda: self.sig_status.emit("Cancelled")))
        if job is None:
            self.sig_status.emit("The AI worker is busy: wait for the running job or cancel it")
        return job

    def _prepare(self):
        """(volume, store, image hash) of the active image, or None with a message."""
        vol = self.session.active
        if self.card is None:
            self.sig_status.emit("Choose a model first")
            return None
        if vol is None:
            self.sig_status.emit("Open an image first")
            return None
        st = self.annotation.ensure_ready()
        return vol, self.workspace.store, st.image_hash

    def run_slice(self):
        return self.run(whole=False)

    def run_volume(self):
        return self.run(whole=True)

    def run_anyway(self, ref: str, whole: bool = False):
        """Run model ``ref`` even though it does not fit the active image (after the user
        confirmed): the prediction is stored and shown marked 'forced'."""
        self.select(ref)
        return self.run(whole, force=True)

    def run(self, whole: bool, force: bool = False):
        """Run the selected model on the current axial slice (or a 2D image) or the volume;
        a model that does not fit the image runs only with ``force``."""
        prep = self._prepare()
        if prep is None:
            return None
        vol, store, h = prep
        card = self.card
        fit = self.fit_of(card.ref)
        if not fit.fits and not force:
            self.sig_status.emit(f"{card.ref} does not fit this image: {fit.reason}")
            return None
        z = int(self.session.cursor_zyx[0])
        if card.task == "classification":
            if whole and vol.shape[0] > 1:
                self.sig_status.emit(f"{card.ref} classifies one image: running it on slice {z + 1}")
            method = self.saliency_method if self.want_saliency else None
            return self._submit(lambda ctx: classify_job(ctx, card, vol, z, store, h, method,
                                                         force),
                                "ai-classify", lambda run: self._on_classified(vol, run),
                                "Classification failed")
        zz = None if whole or vol.shape[0] == 1 else z
        method = self.uncertainty_method if uncertainty_available(card, self.uncertainty_method) \
            else "entropy"
        return self._submit(lambda ctx: segment_job(ctx, card, vol, zz, store, h, method, force),
                            "ai-segment", lambda run: self._on_segmented(vol, run),
                            "Segmentation failed")

    # ------------------------------------------------------------------ classification
    def _on_classified(self, vol, run: ClassificationRun) -> None:
        self.last_class, self.last_class_volume, self.reviewed = run, vol, False
        self._shown_at = time.monotonic()
        self._sync_case_labels(vol, run.record.payload, run.record.id)
        if run.saliency is not None:
            self.heat.set_map(HeatMap.on_slice(vol, run.z, run.saliency, "saliency",
                                               run.saliency_method), show=self.want_saliency)
        where = f"slice {run.z + 1}" if vol.shape[0] > 1 else "the image"
        self.sig_status.emit(f"{run.ref}: {run.label} ({100 * run.probs[run.label]:.1f} %) on {where}; "
                             f"stored as 'predicted'{trust_note(run)}")
        self.sig_classification.emit(run)

    def _sync_case_labels(self, vol, payload: dict, record_id: str) -> None:
        """Show the stored decision in the Case labels panel (when its classes fit), and make
        the next case-label save a child of that record."""
        st = self.annotation.state
        if st is None or st.volume is not vol:
            return
        cl = self.annotation.case_labels()
        try:
            for name, v in payload.get("series", {}).items():
                cl.set(name, v)
            for z, row in payload.get("slices", {}).items():
                for name, v in row.items():
                    cl.set_slice(int(z), name, v)
        except KeyError:  # the model's classes are not in the panel's class list
            pass
        st.case_record_id = record_id

    def accept(self):
        run = self.last_class
        return None if run is None else self._review("final", {run.label: True}, "accepted")

    def reject(self):
        run = self.last_class
        return None if run is None else self._review("corrected", {run.label: False}, "rejected")

    def change(self, name: str):
        run = self.last_class
        if run is None or name not in run.probs:
            return None
        if name == run.label:
            return self.accept()
        return self._review("corrected", {name: True, run.label: False}, f"changed to {name}")

    def _review(self, tag: str, states: dict, decision: str):
        run, vol = self.last_class, self.last_class_volume
        if self.reviewed:
            self.sig_status.emit("This prediction was reviewed already")
            return None
        payload = review_payload(list(run.probs), vol, run.z, states)
        payload["review"] = {"decision": decision, "prediction": run.label, "model": run.ref}
        parent = run.record
        store, source = self.workspace.store, self.workspace.person()
        effort = (max(0.0, time.monotonic() - self._shown_at), 1, 0)
        self.reviewed = True

        def work(reporter):
            return store_case_labels(store, vol, parent.image_hash, payload, tag, source,
                                     parent.id, effort)

        def done(rec):
            self._sync_case_labels(vol, payload, rec.id)
            self.sig_status.emit(f"Prediction {decision}: stored a '{tag}' record")
            self.sig_reviewed.emit(rec)

        def failed(msg):
            self.reviewed = False
            self.sig_error.emit("Could not store the review", msg)

        self.sig_status.emit("Storing the review…")
        return self.bridge.submit(work, "ai-review", on_done=done, on_error=failed,
                                  on_cancelled=lambda: failed("cancelled"))

    # ------------------------------------------------------------------ segmentation
    def _on_segmented(self, vol, run: SegmentationRun) -> None:
        self.last_seg, self.last_seg_volume = run, vol
        self.annotation.propose(vol, run.proposal, run.table, run.record, run.z)
        if run.variance is not None:  # the variance map is shown; entropy still scores
            self.heat.set_map(HeatMap(vol, run.variance, "uncertainty", run.uncertainty_method,
                                      run.z), show=self.want_uncertainty)
        elif run.entropy is not None:
            self.heat.set_map(HeatMap(vol, run.entropy, "uncertainty", "entropy", run.z),
                              show=self.want_uncertainty)
        where = "the volume" if run.z is None else f"slice {run.z + 1}"
        score = "" if not np.isfinite(run.uncertainty) else f"; case uncertainty {run.uncertainty:.3f}"
        self.sig_status.emit(f"{run.ref} segmented {where}: stored as 'predicted'{score}; "
                             f"shown as a proposal to accept or reject{trust_note(run)}")
        self.sig_segmentation.emit(run)

    def set_uncertainty_method(self, method: str) -> None:
        """What the uncertainty overlay of the next segmentation run shows (entropy, or the
        MC-dropout / test-time-augmentation variance where the model allows it)."""
        if method not in dict(UNCERTAINTY_METHODS):
            raise ValueError(f"unknown uncertainty method {method!r}")
        self.uncertainty_method = method

    def set_show_uncertainty(self, on: bool) -> None:
        self.want_uncertainty = bool(on)
        if on and "uncertainty" in self.heat.maps:
            self.heat.show("uncertainty")
        elif on:
            self.sig_status.emit("Run a segmentation model to see its uncertainty")
        elif self.heat.shown == "uncertainty":
            self.heat.show(None)

    def most_uncertain_slice(self) -> Optional[int]:
        run = self.last_seg
        if run is None or self.last_seg_volume is not self.session.active:
            return None
        return run.most_uncertain

    def goto_most_uncertain(self) -> Optional[int]:
        z = self.most_uncertain_slice()
        if z is None:
            self.sig_status.emit("No uncertainty map for this image: run a segmentation model")
            return None
        _, y, x = self.session.cursor_zyx
        self.session.set_cursor_index((z, y, x))
        self.sig_status.emit(f"Most uncertain slice: {z + 1}")
        return z

    # ------------------------------------------------------------------ misc
    def _on_active_changed(self, vol) -> None:
        self._update_fits()
        show = self.last_class is not None and self.last_class_volume is vol
        self.sig_classification.emit(self.last_class if show else None)

    def shutdown(self) -> None:
        self.worker.shutdown()
