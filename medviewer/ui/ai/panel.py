"""AiPanel: the AI dock — model list (models that do not fit the image greyed, with the reason;
the selected model's limits), device, run / cancel with progress, classification result with
review buttons and a warning when the input was outside the training data, saliency and
uncertainty overlay controls."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QMenu, QMessageBox, QProgressBar,
                               QPushButton, QSlider, QVBoxLayout, QWidget)

from medviewer.services.ai_runs import SALIENCY_METHODS, UNCERTAINTY_METHODS, uncertainty_available

from . import settings as ai_settings
from .overlays import COLORMAPS
from .results import ClassResultView
from .trust import card_tooltip, limits_text, trust_html


class AiPanel(QWidget):
    """Widgets only: every action goes to the AiController, every state comes from its signals."""

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.setObjectName("aiPanel")
        self.ctl = controller

        self.models = QListWidget(self)
        self.models.setObjectName("aiModelList")
        self.models.setToolTip("Models from the built-in and user model folders")
        self.models.setMaximumHeight(110)
        self.models.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.limits = QLabel("", self)
        self.limits.setObjectName("aiModelLimits")
        self.limits.setWordWrap(True)
        self.limits.setStyleSheet("font-size: small;")
        self.limits.setTextFormat(Qt.TextFormat.RichText)
        self.trust = QLabel("", self)
        self.trust.setObjectName("aiTrust")
        self.trust.setWordWrap(True)
        self.trust.setStyleSheet("color: #b35900;")
        self.trust.setVisible(False)
        self.import_button = QPushButton("Import model folder…", self)
        self.import_button.setObjectName("aiImport")
        self.device_label = QLabel(controller.initial_device_label(), self)
        self.device_label.setObjectName("aiDeviceLabel")
        self.device_combo = QComboBox(self)
        self.device_combo.setObjectName("aiDeviceCombo")
        self.device_combo.setToolTip("Force the device the models run on (saved in the settings)")
        for key, text in ai_settings.DEVICE_CHOICES:
            self.device_combo.addItem(text, key)
        self._apply_availability()
        pref = ai_settings.device_preference(controller.settings)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(pref)))
        self.fp32_check = QCheckBox("fp32", self)
        self.fp32_check.setObjectName("aiForceFp32")
        self.fp32_check.setToolTip("Full precision: never bf16/fp16 (by default bf16 runs on "
                                   "CPUs with native bf16 for models checked to give the same "
                                   "labels, and mixed precision on GPUs)")
        self.fp32_check.setChecked(ai_settings.force_fp32(controller.settings))

        self.run_slice_button = QPushButton("Run on slice", self)
        self.run_slice_button.setObjectName("aiRunSlice")
        self.run_slice_button.setToolTip("Run the model on the current axial slice (a 2D image: the image) (Ctrl+R)")
        self.run_volume_button = QPushButton("Run on volume", self)
        self.run_volume_button.setObjectName("aiRunVolume")
        self.run_volume_button.setToolTip("Run the model on the whole volume (Ctrl+Shift+R)")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("aiCancel")
        self.cancel_button.setToolTip("Stop the running AI job (Esc)")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("aiProgress")
        self.progress.setVisible(False)
        self.status = QLabel("", self)
        self.status.setObjectName("aiStatus")
        self.status.setWordWrap(True)
        self.result = ClassResultView(self)

        self.saliency = QCheckBox("Show saliency", self)
        self.saliency.setObjectName("aiShowSaliency")
        self.saliency_method = QComboBox(self)
        self.saliency_method.setObjectName("aiSaliencyMethod")
        for key, text in SALIENCY_METHODS:
            self.saliency_method.addItem(text, key)
        self.uncertainty = QCheckBox("Show uncertainty (entropy)", self)
        self.uncertainty.setObjectName("aiShowUncertainty")
        self.uncertainty.setChecked(controller.want_uncertainty)
        self.uncertainty_method = QComboBox(self)
        self.uncertainty_method.setObjectName("aiUncertaintyMethod")
        for key, text in UNCERTAINTY_METHODS:
            self.uncertainty_method.addItem(text, key)
        self.uncertainty_method.setToolTip(
            "What the uncertainty overlay shows after a segmentation run: softmax entropy, or the "
            "variance over MC-dropout passes (models with dropout) or flipped inputs (2D models),"
            " divided by its 99.5th percentile.<br>The case uncertainty score and 'Go to most "
            "uncertain slice' always use the entropy.")
        self.goto_button = QPushButton("Go to most uncertain slice", self)
        self.goto_button.setObjectName("aiGotoUncertain")
        self.goto_button.setToolTip("Move to the axial slice with the highest mean entropy (U)")
        self.colormap = QComboBox(self)
        self.colormap.setObjectName("aiColormap")
        self.colormap.addItems(list(COLORMAPS))
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setObjectName("aiOpacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(round(controller.heat.opacity * 100)))
        self.threshold = QSlider(Qt.Orientation.Horizontal, self)
        self.threshold.setObjectName("aiThreshold")
        self.threshold.setRange(0, 99)
        self.threshold.setValue(int(round(controller.heat.threshold)))
        self.threshold.setToolTip("Draw only heat above this percentile of the map's values on "
                                  "the body (0: all of it)")
        self.seg_info = QLabel("", self)
        self.seg_info.setObjectName("aiSegInfo")
        self.seg_info.setWordWrap(True)
        self._layout()

        self.models.currentItemChanged.connect(
            lambda cur, prev: controller.select(cur.data(Qt.ItemDataRole.UserRole) if cur else None))
        self.import_button.clicked.connect(self._import_dialog)
        self.models.customContextMenuRequested.connect(self._on_list_menu)
        self.device_combo.currentIndexChanged.connect(
            lambda i: controller.set_device_preference(self.device_combo.itemData(i)))
        self.fp32_check.toggled.connect(controller.set_force_fp32)
        self.run_slice_button.clicked.connect(controller.run_slice)
        self.run_volume_button.clicked.connect(controller.run_volume)
        self.cancel_button.clicked.connect(controller.cancel)
        self.result.sig_accept.connect(controller.accept)
        self.result.sig_reject.connect(controller.reject)
        self.result.sig_change.connect(controller.change)
        self.saliency.toggled.connect(controller.set_show_saliency)
        self.saliency_method.currentIndexChanged.connect(
            lambda i: controller.set_saliency_method(self.saliency_method.itemData(i)))
        self.uncertainty.toggled.connect(controller.set_show_uncertainty)
        self.uncertainty_method.currentIndexChanged.connect(
            lambda i: controller.set_uncertainty_method(self.uncertainty_method.itemData(i)))
        self.goto_button.clicked.connect(controller.goto_most_uncertain)
        self.colormap.currentTextChanged.connect(controller.heat.set_colormap)
        self.opacity.valueChanged.connect(lambda v: controller.heat.set_opacity(v / 100.0))
        self.threshold.valueChanged.connect(controller.heat.set_threshold)
        controller.session.active_changed.connect(self._on_active_changed)

        controller.sig_models.connect(self._on_models)
        controller.sig_fits.connect(self._on_fits)
        controller.sig_selected.connect(self._on_selected)
        controller.sig_running.connect(self._on_running)
        controller.sig_progress.connect(self._on_progress)
        controller.sig_status.connect(self.status.setText)
        controller.sig_device.connect(self._on_device)
        controller.sig_classification.connect(self._on_classification)
        controller.sig_segmentation.connect(self._on_segmentation)
        controller.sig_reviewed.connect(self._on_reviewed)

    def _layout(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(QLabel("Models", self))
        lay.addWidget(self.models)
        lay.addWidget(self.limits)
        lay.addWidget(self.import_button)
        dev = QHBoxLayout()
        dev.addWidget(QLabel("Device:", self))
        dev.addWidget(self.device_label, 1)
        dev.addWidget(self.device_combo)
        dev.addWidget(self.fp32_check)
        lay.addLayout(dev)
        run = QHBoxLayout()
        for b in (self.run_slice_button, self.run_volume_button, self.cancel_button):
            run.addWidget(b)
        lay.addLayout(run)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.trust)
        box = QGroupBox("Classification", self)
        bl = QVBoxLayout(box)
        bl.addWidget(self.result)
        sal = QHBoxLayout()
        sal.addWidget(self.saliency)
        sal.addWidget(self.saliency_method, 1)
        bl.addLayout(sal)
        lay.addWidget(box)
        box = QGroupBox("Segmentation", self)
        bl = QVBoxLayout(box)
        bl.addWidget(self.seg_info)
        unc = QHBoxLayout()
        unc.addWidget(self.uncertainty)
        unc.addWidget(self.uncertainty_method, 1)
        bl.addLayout(unc)
        bl.addWidget(self.goto_button)
        lay.addWidget(box)
        box = QGroupBox("Heat map", self)
        form = QFormLayout(box)
        form.addRow("Colormap", self.colormap)
        form.addRow("Opacity", self.opacity)
        form.addRow("Above percentile", self.threshold)
        lay.addWidget(box)
        lay.addStretch(1)

    # ------------------------------------------------------------------ reactions
    def _apply_availability(self) -> None:
        avail = ai_settings.available_devices()
        model = self.device_combo.model()
        for i in range(self.device_combo.count()):
            key = self.device_combo.itemData(i)
            if isinstance(model, QStandardItemModel):
                item = model.item(i)
                item.setEnabled(bool(avail.get(key, False)))
                item.setToolTip("" if avail.get(key) else f"{key.upper()} is not available on this machine")

    def _on_models(self, cards) -> None:
        self.models.blockSignals(True)
        self.models.clear()
        versions = {}
        for card in cards:
            versions[card.name] = versions.get(card.name, 0) + 1
        for card in cards:  # the active one marked where a model has several versions
            active = versions[card.name] > 1 and card.ref in getattr(self.ctl, "active_refs", ())
            item = QListWidgetItem(f"{card.ref} — {card.task}" + (" (active)" if active else "")
                                   + (f" (superseded by {card.superseded_by})"
                                      if card.superseded_by else ""))
            item.setData(Qt.ItemDataRole.UserRole, card.ref)
            item.setData(Qt.ItemDataRole.UserRole + 1, item.text())
            self.models.addItem(item)
        self.models.blockSignals(False)
        self._on_fits(self.ctl.fits)
        if not cards:
            self.status.setText("No models found (models/ or the user models folder)")

    def _on_fits(self, fits: dict) -> None:
        """Grey the models that do not fit the active image (listed after those that do);
        the reason in their tooltip."""
        cards = {c.ref: c for c in self.ctl.cards}
        self.models.blockSignals(True)
        current = self.models.currentItem()
        items = [self.models.takeItem(0) for _ in range(self.models.count())]
        rank = {ref: k for k, ref in enumerate(cards)}  # the catalogue's order within each group
        refs = [it.data(Qt.ItemDataRole.UserRole) for it in items]
        # fitting models first; among them those without cautions (e.g. a body region that
        # differs from the series' BodyPartExamined) before those with, then superseded ones
        names = {c.name for c in cards.values()}
        order = sorted(range(len(items)), key=lambda i: (
            not self._fits(fits, refs[i]), bool(self._notes(fits, refs[i])),
            getattr(cards.get(refs[i]), "superseded_by", None) in names, rank.get(refs[i], i)))
        for i in order:
            self.models.addItem(items[i])
        if current is not None:
            self.models.setCurrentItem(current)
        for i in range(self.models.count()):
            item = self.models.item(i)
            ref = item.data(Qt.ItemDataRole.UserRole)
            fit = fits.get(ref)
            ok = fit is None or fit.fits
            flags = item.flags()
            item.setFlags(flags | Qt.ItemFlag.ItemIsEnabled if ok
                          else flags & ~Qt.ItemFlag.ItemIsEnabled)
            base = item.data(Qt.ItemDataRole.UserRole + 1)
            item.setText(base if ok else f"{base} — not for this image")
            if ref in cards:
                item.setToolTip(card_tooltip(cards[ref], fit))
        self.models.blockSignals(False)
        self._show_trust(self._current_seg())
        self._update_enabled()

    def _current_seg(self):
        """The last segmentation run when it was on the active image, else None."""
        return self.ctl.last_seg if self.ctl.last_seg_volume is self.ctl.session.active else None

    @staticmethod
    def _notes(fits: dict, ref) -> tuple:
        fit = fits.get(ref)
        return tuple(getattr(fit, "notes", ()) or ())

    @staticmethod
    def _fits(fits: dict, ref) -> bool:
        fit = fits.get(ref)
        return fit is None or fit.fits

    def is_model_enabled(self, ref: str) -> bool:
        """Whether model ``ref`` is offered (not greyed) for the active image."""
        for i in range(self.models.count()):
            item = self.models.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == ref:
                return bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)
        return False

    def _show_trust(self, run) -> None:
        text = trust_html(run)
        self.trust.setText(text)
        self.trust.setVisible(bool(text))

    def _on_list_menu(self, pos) -> None:
        item = self.models.itemAt(pos)
        if item is None or item.flags() & Qt.ItemFlag.ItemIsEnabled or self.ctl.running:
            return
        ref = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        vol = self.ctl.session.active
        one = menu.addAction("Run anyway on this slice / image…")
        whole = menu.addAction("Run anyway on the whole volume…") if (
            vol is not None and vol.shape[0] > 1) else None
        chosen = menu.exec(self.models.viewport().mapToGlobal(pos))
        if chosen is not None and chosen in (one, whole) and self.confirm_forced(ref):
            self.ctl.run_anyway(ref, whole=chosen is whole)

    def confirm_forced(self, ref: str) -> bool:
        reason = self.ctl.fit_of(ref).reason
        answer = QMessageBox.question(
            self, "Run a model outside its domain?",
            f"{ref} was not trained on images like this one:\n{reason}.\n\nIts output is "
            f"likely meaningless. Run it anyway? The result will be marked 'forced'.")
        return answer == QMessageBox.StandardButton.Yes

    def _on_selected(self, card) -> None:
        for i in range(self.models.count()):
            item = self.models.item(i)
            if card is not None and item.data(Qt.ItemDataRole.UserRole) == card.ref:
                self.models.blockSignals(True)
                self.models.setCurrentItem(item)
                self.models.blockSignals(False)
        text = limits_text(card).replace("\n", "<br>")
        self.limits.setText(f"<b>Limits of {card.name}:</b><br>{text}" if text else "")
        self.limits.setVisible(bool(text))
        self._update_uncertainty_methods(card)
        self._update_enabled()

    def _update_uncertainty_methods(self, card) -> None:
        """Enable the uncertainty methods the selected model allows; fall back to entropy."""
        model = self.uncertainty_method.model()
        for i in range(self.uncertainty_method.count()):
            key = self.uncertainty_method.itemData(i)
            ok = uncertainty_available(card, key)
            if isinstance(model, QStandardItemModel):
                model.item(i).setEnabled(ok)
                model.item(i).setToolTip("" if ok else "This model does not allow it (MC-dropout "
                                         "needs dropout layers, TTA a 2D model)")
        if not self.method_enabled(self.uncertainty_method.currentData()):
            self.uncertainty_method.setCurrentIndex(self.uncertainty_method.findData("entropy"))

    def method_enabled(self, key: str) -> bool:
        """Whether uncertainty method ``key`` can be chosen for the selected model."""
        model = self.uncertainty_method.model()
        i = self.uncertainty_method.findData(key)
        return i >= 0 and isinstance(model, QStandardItemModel) and model.item(i).isEnabled()

    def _update_enabled(self) -> None:
        running, card = self.ctl.running, self.ctl.card
        runnable = not running and card is not None and self.ctl.fit_of(card.ref).fits
        self.run_slice_button.setEnabled(runnable)  # a model that does not fit: "Run anyway"
        self.run_volume_button.setEnabled(runnable)
        self.cancel_button.setEnabled(running)
        self.models.setEnabled(not running)
        self.import_button.setEnabled(not running)

    def _on_running(self, running: bool) -> None:
        self._update_enabled()
        if running:
            self.progress.setRange(0, 0)
            self.progress.setVisible(True)
        else:
            self.progress.setVisible(False)
            self._apply_availability()  # exact once torch is loaded

    def _on_progress(self, message: str, done: int, total: int) -> None:
        self.progress.setVisible(True)
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
        else:
            self.progress.setRange(0, 0)
        if message:
            self.status.setText(message)

    def _on_device(self, label: str) -> None:
        self.device_label.setText(label)
        self.device_label.setToolTip(label)

    def _on_classification(self, run) -> None:
        self._show_trust(run if run is not None else self._current_seg())
        if run is None:
            self.result.show_result(None)
            return
        vol = self.ctl.last_class_volume
        where = f"slice {run.z + 1}" if vol is not None and vol.shape[0] > 1 else "the image"
        self.result.show_result(run.probs, run.label, f"{where}; uncertainty {run.uncertainty:.2f}",
                                reviewable=not self.ctl.reviewed)

    def _on_reviewed(self, rec) -> None:
        self.result.set_reviewable(False)
        decision = rec.payload.get("review", {}).get("decision", "")
        self.result.set_review_text(f"{decision.capitalize()}: stored '{rec.tag}' "
                                    f"({rec.created_at[:19].replace('T', ' ')} UTC)")

    def _on_segmentation(self, run) -> None:
        self._show_trust(run)
        where = "whole volume" if run.z is None else f"slice {run.z + 1}"
        txt = f"{run.ref} on the {where}: labels {', '.join(map(str, run.label_names[1:]))}"
        if run.uncertainty == run.uncertainty:  # not NaN
            txt += f"<br>Case uncertainty {run.uncertainty:.3f}"
        if run.most_uncertain is not None:
            txt += f"; most uncertain slice {run.most_uncertain + 1}"
        self.seg_info.setText(txt)

    def _on_active_changed(self, volume) -> None:
        """Another series: no text of the last one's run stays behind."""
        self.status.setText("")
        if volume is None or self.ctl.last_seg_volume is not volume:
            self.seg_info.setText("")

    def _import_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Import a model folder (with model.json)")
        if folder:
            self.ctl.import_folder(folder)
