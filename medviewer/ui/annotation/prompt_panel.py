"""PromptPanel: the Prompt tool's box in the Segmentation dock — prompt kind, engine, 3D, the
prompt history (undo the last, remove any, clear), Accept / Reject. Widgets only: the state
comes from the PromptController."""
from __future__ import annotations

from PySide6.QtWidgets import (QButtonGroup, QComboBox, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QListWidget, QPushButton, QToolButton, QVBoxLayout)

from ..shortcuts import KEYS
from .prompt_controller import MODES

_MODE_TEXT = {"positive": ("+ Click", "Positive clicks: the object is here"),
              "negative": ("− Click", "Negative clicks: not the object"),
              "box": ("Box", "Drag a box around the object"),
              "scribble": ("Scribble", "Drag a stroke inside the object (Shift: outside)")}


class PromptPanel(QGroupBox):
    def __init__(self, prompts, commands, parent=None):
        super().__init__("Interactive segmentation (Prompt tool)", parent)
        self.setObjectName("promptPanel")
        self.pc = prompts
        self.modes = QButtonGroup(self)
        row = QHBoxLayout()
        self.mode_buttons = {}
        for mode in MODES:
            text, tip = _MODE_TEXT[mode]
            b = QToolButton(self)
            b.setObjectName(f"promptMode_{mode}")
            b.setText(text)
            b.setCheckable(True)
            b.setToolTip(f"{tip} ({KEYS['prompt_' + mode]})")
            b.clicked.connect(lambda checked=False, m=mode: prompts.set_mode(m))
            self.modes.addButton(b)
            self.mode_buttons[mode] = b
            row.addWidget(b)
        self.engine = QComboBox(self)
        self.engine.setObjectName("promptEngine")
        for info in prompts.engines():
            self.engine.addItem(info.name, info.name)
            item = self.engine.model().item(self.engine.count() - 1)
            item.setEnabled(info.available)
            item.setToolTip("" if info.available else f"Not available: {info.reason}")
        self.engine.currentIndexChanged.connect(
            lambda i: prompts.set_engine(self.engine.itemData(i)))
        self.history = QListWidget(self)
        self.history.setObjectName("promptHistory")
        self.history.setToolTip("The prompts of this object, oldest first")
        self.history.setMaximumHeight(110)
        self.info = QLabel("", self)
        self.info.setObjectName("promptInfo")
        self.info.setWordWrap(True)
        self.buttons = {}
        for key, text, slot, tip in (
                ("prompt_3d", "3D", commands.prompt_3d,
                 f"Propagate through the neighbouring slices until the object ends ({KEYS['prompt_3d']})"),
                ("prompt_undo", "Undo prompt", prompts.undo, f"Undo the last prompt ({KEYS['undo']})"),
                ("prompt_remove", "Remove", self._remove_selected, "Remove the selected prompt"),
                ("prompt_clear", "Clear", prompts.clear, f"Clear the prompts ({KEYS['prompt_clear']})"),
                ("prompt_accept", "Accept", commands.prompt_accept,
                 f"Merge the result into the active label, one undo step ({KEYS['prompt_accept']})"),
                ("prompt_reject", "Reject", commands.prompt_reject,
                 f"Drop the result and the prompts ({KEYS['prompt_reject']})")):
            b = QPushButton(text, self)
            b.setObjectName("prompt" + key.split("_", 1)[1].title())
            b.setToolTip(tip)
            b.clicked.connect(lambda checked=False, s=slot: s())
            self.buttons[key] = b
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        grid = QGridLayout()
        grid.addWidget(QLabel("Engine", self), 0, 0)
        grid.addWidget(self.engine, 0, 1)
        grid.addWidget(self.buttons["prompt_3d"], 0, 2)
        lay.addLayout(grid)
        lay.addWidget(self.history)
        edit = QHBoxLayout()
        for key in ("prompt_undo", "prompt_remove", "prompt_clear"):
            edit.addWidget(self.buttons[key])
        lay.addLayout(edit)
        ok = QHBoxLayout()
        ok.addWidget(self.buttons["prompt_accept"])
        ok.addWidget(self.buttons["prompt_reject"])
        lay.addLayout(ok)
        lay.addWidget(self.info)
        prompts.sig_prompts_changed.connect(self.refresh)
        prompts.sig_running.connect(lambda running: self.refresh())
        prompts.sig_result.connect(lambda prop: self.refresh())
        self.refresh()

    def _remove_selected(self) -> None:
        row = self.history.currentRow()
        if 0 <= row < len(self.pc.entries):
            self.pc.remove(row)

    def refresh(self) -> None:
        pc = self.pc
        self.mode_buttons[pc.mode].setChecked(True)
        i = self.engine.findData(pc.session.engine)
        if i >= 0 and i != self.engine.currentIndex():
            self.engine.blockSignals(True)
            self.engine.setCurrentIndex(i)
            self.engine.blockSignals(False)
        self.history.clear()
        for e in pc.entries:
            self.history.addItem(e.label())
        self.history.setCurrentRow(self.history.count() - 1)
        has = bool(pc.entries)
        self.buttons["prompt_undo"].setEnabled(has)
        self.buttons["prompt_remove"].setEnabled(has)
        self.buttons["prompt_clear"].setEnabled(has)
        self.buttons["prompt_3d"].setEnabled(has and not pc.session.three_d)
        self.buttons["prompt_accept"].setEnabled(pc.proposal is not None and not pc.running)
        self.buttons["prompt_reject"].setEnabled(has or pc.proposal is not None)
        if pc.running:
            text = "Running…"
        elif pc.proposal is not None:
            n = sum(pc.proposal.counts.values())
            text = f"Result: {n} voxels{' (3D)' if pc.session.three_d else ''}"
        else:
            text = "Pick the Prompt tool (I) and click inside an object" if not has else ""
        self.info.setText(text)
