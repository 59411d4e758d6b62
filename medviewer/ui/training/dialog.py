"""FinetuneDialog: pick a base model version, start / cancel a fine-tuning run, watch it live.

The dialog only shows what the FinetuneController (owned by the main window) does: closing it
leaves the run going, and a dialog opened later replays the events received so far. At the
end it shows the gate result (candidate vs active on the frozen validation set) and the
report (report.md + report.png of the new version) in its Report tab. A frozen validation set
below the minimum (Advanced) starts nothing: the dialog says what is missing."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDoubleSpinBox, QFormLayout,
                               QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton,
                               QSpinBox, QSplitter, QTabWidget, QVBoxLayout)

from .advanced import AdvancedOptions
from .common import window_dialog
from .controller import BUILDING, RUNNING, FinetuneController
from .plot import TrainingPlot
from .prompt_mode import PromptMode, metric_label
from .report_view import ReportView


class FinetuneDialog(QDialog):
    def __init__(self, controller: FinetuneController, registry_fn=None,
                 model: Optional[str] = None, parent=None):
        super().__init__(parent)
        self.setObjectName("finetuneDialog")
        self.setWindowTitle("Fine-tune a model")
        self.ctl = controller
        self._catalog_fn = registry_fn or controller._catalog_fn
        self.registry = None
        self.report_path: Optional[Path] = None
        self._epochs = 0
        self._build_ui()
        self.prompt_mode = PromptMode(self)
        self.refresh_models(model)
        controller.sig_event.connect(self._on_event)
        controller.sig_log.connect(self._append_log)
        controller.sig_state.connect(self._on_state)
        controller.sig_finished.connect(self._on_finished)
        self._replay()
        self.resize(900, 760)

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("finetuneModel")
        self.model_combo.currentTextChanged.connect(self._fill_versions)
        self.version_combo = QComboBox(self)
        self.version_combo.setObjectName("finetuneVersion")
        self.epochs = QSpinBox(self)
        self.epochs.setObjectName("finetuneEpochs")
        self.epochs.setRange(1, 500)
        self.epochs.setValue(30)
        self.epochs.setToolTip("Most epochs; early stopping on the validation metric may end sooner")
        self.margin = QDoubleSpinBox(self)
        self.margin.setObjectName("finetuneMargin")
        self.margin.setDecimals(3)
        self.margin.setRange(0.0, 1.0)
        self.margin.setSingleStep(0.005)
        self.margin.setValue(0.01)
        self.margin.setToolTip("Gate: the new version is promoted only if its validation metric "
                               "is not worse than the active version's by more than this")
        self.promote = QCheckBox("Promote the new version when it passes the gate", self)
        self.promote.setObjectName("finetunePromote")
        self.promote.setChecked(True)

        form = QFormLayout()
        pick = QHBoxLayout()
        pick.addWidget(self.model_combo, 2)
        pick.addWidget(QLabel("version", self))
        pick.addWidget(self.version_combo, 1)
        form.addRow("Base model:", pick)
        nums = QHBoxLayout()
        nums.addWidget(self.epochs)
        nums.addSpacing(16)
        nums.addWidget(QLabel("Gate margin:", self))
        nums.addWidget(self.margin)
        nums.addStretch(1)
        self.epochs_label = QLabel("Epochs:", self)
        form.addRow(self.epochs_label, nums)
        form.addRow("", self.promote)
        self.task_info = QLabel("", self)
        self.task_info.setObjectName("finetuneTaskInfo")
        self.task_info.setWordWrap(True)
        self.task_info.setVisible(False)
        form.addRow(self.task_info)
        self.advanced = AdvancedOptions(self)
        form.addRow(self.advanced)

        self.start_button = QPushButton("Start", self)
        self.start_button.setObjectName("finetuneStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel run", self)
        self.cancel_button.setObjectName("finetuneCancel")
        self.cancel_button.setToolTip("Stop training (SIGTERM); no version is written, the active one stays")
        self.cancel_button.clicked.connect(self.ctl.cancel)
        self.close_button = QPushButton("Close", self)
        self.close_button.setToolTip("Close this window; a run keeps going (AI > Fine-tune… shows it again)")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)

        self.status = QLabel("Ready.", self)
        self.status.setObjectName("finetuneStatus")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("finetuneProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.result = QLabel("", self)
        self.result.setObjectName("finetuneResult")
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.RichText)
        self.report_button = QPushButton("Show report", self)
        self.report_button.setObjectName("finetuneOpenReport")
        self.report_button.setEnabled(False)
        self.report_button.clicked.connect(self.open_report)
        res = QHBoxLayout()
        res.addWidget(self.result, 1)
        res.addWidget(self.report_button)

        self.plot = TrainingPlot(self)
        self.plot.setMinimumHeight(220)
        self.log = QPlainTextEdit(self)
        self.log.setObjectName("finetuneLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.report_view = ReportView(self, "finetuneReport")
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.log, "Log")
        self.tabs.addTab(self.report_view, "Report")
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.plot)
        split.addWidget(self.tabs)
        split.setSizes([380, 220])

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.progress)
        lay.addLayout(res)
        lay.addWidget(split, 1)

    # ------------------------------------------------------------------ models
    def refresh_models(self, model: Optional[str] = None) -> None:
        self.registry = self._catalog_fn().reload()
        cards = self.registry.list()
        names = sorted({c.name for c in cards})
        want = (model or self.model_combo.currentText() or "").partition(":")[0]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItems(names)
        self.model_combo.blockSignals(False)
        if want in names:
            self.model_combo.setCurrentText(want)
        self._fill_versions(self.model_combo.currentText(), model)

    def _fill_versions(self, name: str, ref: Optional[str] = None) -> None:
        """Versions of ``name``, newest first; the active version (or ``ref``'s) selected."""
        self.version_combo.clear()
        if not name or self.registry is None:
            self._apply_task(None)
            return
        cards = [c for c in self.registry.list() if c.name == name]
        try:
            default = self.registry.get(name).version  # the active one when a pointer exists
        except Exception:
            default = cards[-1].version if cards else None
        want = ref.partition(":")[2] if ref and ":" in ref and ref.startswith(name + ":") else default
        for card in reversed(cards):
            text = card.version + ("  (active)" if card.version == default else "")
            self.version_combo.addItem(text, card.version)
        idx = self.version_combo.findData(want)
        self.version_combo.setCurrentIndex(max(0, idx))
        self._apply_task(cards[-1].task if cards else None)

    def _apply_task(self, task: Optional[str]) -> None:
        if hasattr(self, "prompt_mode"):
            self.prompt_mode.apply(task)

    def base_ref(self) -> Optional[str]:
        name, version = self.model_combo.currentText(), self.version_combo.currentData()
        return f"{name}:{version}" if name and version else None

    def select_base(self, ref: str) -> None:
        self.refresh_models(ref)

    # ------------------------------------------------------------------ run
    def start(self) -> bool:
        ref = self.base_ref()
        if ref is None or self.ctl.running:
            return False
        self._clear_run()
        epochs, extra = self.prompt_mode.run_args(self.advanced.extra_args())
        self._epochs = epochs
        return self.ctl.start(ref, epochs=epochs, margin=self.margin.value(),
                              promote=self.promote.isChecked(), extra_args=extra,
                              val_minimum=self.advanced.val_minimum())

    def _clear_run(self) -> None:
        self.plot.clear()
        self.log.clear()
        self.result.setText("")
        self.report_view.clear()
        self.report_path = None
        self.report_button.setEnabled(False)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")

    def _replay(self) -> None:
        """Show the controller's current (or last) run: a dialog opened mid-run catches up."""
        for line in self.ctl.log_lines:
            self._append_log(line)
        for event in self.ctl.events:
            self._on_event(event, log=False)
        self._on_state(self.ctl.state)
        if not self.ctl.running and self.ctl.outcome:
            self._on_finished(self.ctl.outcome, self.ctl.result or self.ctl.error)
        if self.ctl.base_ref:
            self.select_base(self.ctl.base_ref)

    def _append_log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _on_state(self, state: str) -> None:
        running = state != "idle"
        for w in (self.model_combo, self.version_combo, self.epochs, self.margin, self.promote,
                  self.start_button):
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if state == BUILDING:
            self.status.setText("Building the training manifest from the label store…")
            self.progress.setRange(0, 0)  # busy
        elif state == RUNNING:
            self.status.setText("Starting the training process…")
            self.progress.setRange(0, 1000)

    def _on_event(self, ev: dict, log: bool = True) -> None:
        kind = ev.get("event")
        line = None
        if kind == "start":
            self._epochs = int(ev.get("epochs") or self._epochs or 1)
            self.status.setText(f"Training {ev.get('candidate', '?')} from {ev.get('base', '?')} on "
                                f"{ev.get('device', '?')} (world size {ev.get('world_size', 1)})")
            line = (f"start: {ev.get('train', '?')} training / {ev.get('val', '?')} validation "
                    f"entries, manifest {str(ev.get('manifest_sha256', ''))[:12]}")
        elif kind == "progress":
            epoch, step, steps = int(ev.get("epoch", 1)), int(ev.get("step", 0)), int(ev.get("steps", 1) or 1)
            epochs = int(ev.get("epochs") or self._epochs or 1)
            self._epochs = epochs
            self.plot.add_progress(epoch, step, steps, ev.get("loss"))
            self._set_progress((epoch - 1 + step / steps) / epochs,
                               f"epoch {epoch}/{epochs}  step {step}/{steps}  loss {_f(ev.get('loss'))}")
        elif kind == "epoch":
            epoch = int(ev.get("epoch", 0))
            metric = metric_label(ev.get("metric", "metric"))
            self.plot.set_metric_name(metric)
            self.plot.add_epoch(epoch, ev.get("train_loss"), ev.get("val_metric"), bool(ev.get("best")))
            self._set_progress(epoch / max(1, self._epochs),
                               f"epoch {epoch}/{self._epochs}  val {metric} {_f(ev.get('val_metric'))}")
            line = (f"epoch {epoch}: train loss {_f(ev.get('train_loss'))}, val {metric} "
                    f"{_f(ev.get('val_metric'))}{'  (best)' if ev.get('best') else ''}")
        elif kind == "baseline":  # the base version on the frozen val set, before training
            if _isnum(ev.get("value")):
                self.plot.set_metric_name(metric_label(ev.get("metric", "metric")))
                self.plot.set_baseline(float(ev["value"]), f"base {ev.get('version', '')}")
            line = f"baseline: base {ev.get('version')} val {ev.get('metric')} {_f(ev.get('value'))}"
        elif kind == "gate":
            active, cand = ev.get("active") or {}, ev.get("candidate") or {}
            if _isnum(active.get("value")):
                self.plot.set_baseline(float(active["value"]), f"active {active.get('version', '')}")
            self.result.setText(self._gate_text(ev))
            line = (f"gate: {metric_label(ev.get('metric'))} candidate {_f(cand.get('value'))} vs active "
                    f"{_f(active.get('value'))} (margin {ev.get('margin')}) -> "
                    f"{'passed' if ev.get('passed') else 'not passed'}")
        elif kind == "done":
            self._set_progress(1.0, "done")
            line = (f"done: version {ev.get('version')} in {ev.get('folder')} "
                    f"({'promoted' if ev.get('promoted') else 'not promoted'}, {_f(ev.get('wall_s'), 1)} s)")
            self._show_report(ev.get("report"))
        elif kind == "cancelled":
            line = "cancelled by the training process"
        elif kind == "error":
            line = f"error: {ev.get('message', '')}"
        if line and log:
            self._append_log(line)

    def _set_progress(self, fraction: float, text: str) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(1.0, max(0.0, fraction))))
        self.progress.setFormat(text)

    @staticmethod
    def _gate_text(ev: dict) -> str:
        active, cand = ev.get("active") or {}, ev.get("candidate") or {}
        if ev.get("gated") is False:
            return f"<b style='color:#f0883e'>Not gated</b>: {_esc(str(ev.get('reason', '')))}"
        ok = bool(ev.get("passed"))
        colour = "#3fb950" if ok else "#f0883e"
        verdict = "passed" if ok else "not passed"
        text = (f"<b style='color:{colour}'>Gate {verdict}</b>: "
                f"{_esc(metric_label(ev.get('metric', 'metric')))} on the "
                f"frozen validation set — candidate {cand.get('version', '')} "
                f"<b>{_f(cand.get('value'))}</b> vs active {active.get('version', '')} "
                f"<b>{_f(active.get('value'))}</b> (margin {ev.get('margin')})")
        diff = (ev.get("ci") or {}).get("difference")
        if diff:
            text += f"; change 95% CI [{diff[0]:+.4f}, {diff[1]:+.4f}]"
        falls = ev.get("class_falls") or []
        if falls:
            text += "; falls more than the margin: " + ", ".join(
                f"{_esc(str(f['class']))} {f['change']:+.4f}" for f in falls)
        return text

    def _on_finished(self, outcome: str, payload) -> None:
        self._on_state("idle")
        if outcome == "done" and isinstance(payload, dict):
            promoted = bool(payload.get("promoted"))
            gate = self.ctl.gate
            if gate:  # the version is taken at commit: the one written, not the one expected
                gate = dict(gate, candidate=dict(gate.get("candidate") or {},
                                                 version=payload.get("version")))
            head = self._gate_text(gate) + "<br>" if gate else ""
            why = payload.get("not_promoted")
            self.result.setText(head + f"New version <b>{payload.get('version')}</b> written; "
                                + ("it is now the <b>active</b> version." if promoted
                                   else "the active version is unchanged.")
                                + (f"<br>Not promoted: {_esc(str(why))}" if why else ""))
            self.status.setText("Finished.")
            self.refresh_models(self.model_combo.currentText())
        elif outcome == "cancelled":
            self.status.setText("Cancelled — no version was written; the active version is unchanged.")
            self.progress.setRange(0, 1000)
            self.progress.setFormat("cancelled")
        else:
            self.status.setText("Failed." if outcome == "failed" else "Not started.")
            self.result.setText(f"<span style='color:#f85149'>{_esc(str(payload))}</span>")
            self.progress.setRange(0, 1000)
            self.progress.setFormat(outcome)

    # ------------------------------------------------------------------ report
    def _show_report(self, report) -> None:
        if not report:
            return
        path = Path(report)
        self.report_path = path
        self.report_button.setEnabled(path.is_file())
        if path.is_file():
            self.report_view.show_report(path)

    def open_report(self) -> None:
        """Show the new version's report in the Report tab."""
        if self.report_path is not None and self.report_path.is_file():
            self.tabs.setCurrentWidget(self.report_view)


def _isnum(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _f(v, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if _isnum(v) else "—"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def show_finetune_dialog(win, controller: FinetuneController, model: Optional[str] = None) -> FinetuneDialog:
    """Raise the window's fine-tune dialog, or open one (non-modal; deleted when closed)."""
    dlg, created = window_dialog(win, "_finetune_dialog",
                                 lambda: FinetuneDialog(controller, model=model, parent=win))
    if not created and model and not controller.running:
        dlg.select_base(model)
    dlg.show()
    dlg.raise_()
    dlg.activateWindow()
    return dlg
