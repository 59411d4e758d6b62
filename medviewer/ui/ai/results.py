"""ClassResultView: a classifier's class probabilities as bars, with Accept / Reject /
Change-to buttons that review the prediction (the AI controller stores the decision)."""
from __future__ import annotations

from typing import Dict, List, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

BAR_STEPS = 1000  # progress bars are integer: probabilities are shown to 0.1 %


class ClassResultView(QWidget):
    """Shows ``probs`` {class: p} (bars, the predicted class first in bold) and emits the
    reviewer's decision."""

    sig_accept = Signal()
    sig_reject = Signal()
    sig_change = Signal(str)  # the class chosen instead

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("aiClassResult")
        self.probs: Dict[str, float] = {}
        self.label: Optional[str] = None
        self.bars: Dict[str, QProgressBar] = {}
        self.title = QLabel("No classification yet", self)
        self.title.setObjectName("aiResultTitle")
        self.title.setWordWrap(True)
        self.grid_host = QWidget(self)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.accept_button = QPushButton("Accept", self)
        self.accept_button.setObjectName("aiAccept")
        self.accept_button.setToolTip("The prediction is right: store a 'final' record with this class")
        self.reject_button = QPushButton("Reject", self)
        self.reject_button.setObjectName("aiReject")
        self.reject_button.setToolTip("The predicted class is wrong: store a 'corrected' record "
                                      "marking it absent")
        self.change_combo = QComboBox(self)
        self.change_combo.setObjectName("aiChangeClass")
        self.change_button = QPushButton("Change to", self)
        self.change_button.setObjectName("aiChange")
        self.change_button.setToolTip("Store a 'corrected' record with the class chosen at the right")
        self.review = QLabel("", self)
        self.review.setObjectName("aiReviewStatus")
        self.review.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.accept_button)
        row.addWidget(self.reject_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.change_button)
        row2.addWidget(self.change_combo, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.grid_host)
        lay.addLayout(row)
        lay.addLayout(row2)
        lay.addWidget(self.review)
        self.accept_button.clicked.connect(self.sig_accept)
        self.reject_button.clicked.connect(self.sig_reject)
        self.change_button.clicked.connect(lambda: self.sig_change.emit(self.change_combo.currentText()))
        self.show_result(None)

    def show_result(self, probs: Optional[Dict[str, float]], label: Optional[str] = None,
                    where: str = "", reviewable: bool = True) -> None:
        """Bars for ``probs`` (None clears); ``where`` says what was classified."""
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.setParent(None)
                w.deleteLater()
        self.bars = {}
        self.probs = dict(probs or {})
        self.label = label
        for i, (name, p) in enumerate(self.probs.items()):
            lab = QLabel(name, self.grid_host)
            lab.setObjectName(f"aiClassName_{name}")
            if name == label:
                lab.setStyleSheet("font-weight: bold;")
            bar = QProgressBar(self.grid_host)
            bar.setObjectName(f"aiProb_{name}")
            bar.setRange(0, BAR_STEPS)
            bar.setValue(int(round(float(p) * BAR_STEPS)))
            bar.setFormat(f"{100.0 * float(p):.1f} %")
            bar.setToolTip(f"{name}: probability {float(p):.4f}")
            self.grid.addWidget(lab, i, 0)
            self.grid.addWidget(bar, i, 1)
            self.bars[name] = bar
        self.change_combo.clear()
        others: List[str] = [n for n in self.probs if n != label]
        self.change_combo.addItems(others)
        if probs:
            self.title.setText(f"Prediction: <b>{label}</b>" + (f" — {where}" if where else ""))
        else:
            self.title.setText("No classification yet")
        self.set_reviewable(bool(probs) and reviewable)
        self.review.setText("")

    def set_reviewable(self, on: bool) -> None:
        for w in (self.accept_button, self.reject_button, self.change_button, self.change_combo):
            w.setEnabled(on)

    def bar_values(self) -> Dict[str, float]:
        """The probabilities the bars show (0..1, to 0.1 %)."""
        return {n: b.value() / BAR_STEPS for n, b in self.bars.items()}

    def set_review_text(self, text: str) -> None:
        self.review.setText(text)
