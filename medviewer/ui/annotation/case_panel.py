"""CasePanel: series-level (and optional slice-level) finding labels from a class list, with
Alt+1..Alt+9 shortcuts and Save (a 'case' record in the label store, with effort)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QVBoxLayout, QWidget)

from medviewer.core.case_labels import CaseLabels, ClassList

STATE_TEXT = {True: "present", False: "absent", None: "not set"}
MAX_SHORTCUTS = 9


class CasePanel(QWidget):
    """One checkbox per class: checked = present, unchecked = absent, grey = not set yet."""

    def __init__(self, controller, session, parent=None):
        super().__init__(parent)
        self.setObjectName("casePanel")
        self.ctl, self.session = controller, session
        self.class_list = ClassList.default()
        self.boxes: Dict[str, QCheckBox] = {}
        self._filling = False
        self._watched = None

        self.slice_level = QCheckBox("Slice level (current axial slice)", self)
        self.slice_level.setObjectName("caseSliceLevel")
        self.slice_level.setToolTip("Set findings for the current slice instead of the whole series")
        self.title = QLabel("", self)
        self.title.setObjectName("caseTitle")
        self.box_area = QWidget(self)
        self.box_layout = QVBoxLayout(self.box_area)
        self.box_layout.setContentsMargins(2, 2, 2, 2)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.box_area)
        self.load_button = QPushButton("Class list…", self)
        self.load_button.setObjectName("caseLoadClasses")
        self.load_button.setToolTip("Load a class list (one name per line, or a JSON list)")
        self.save_button = QPushButton("Save", self)
        self.save_button.setObjectName("caseSave")
        self.save_button.setToolTip("Save the case labels to the label store")
        self.final_button = QPushButton("Save as final", self)
        self.final_button.setObjectName("caseSaveFinal")
        self.status = QLabel("", self)
        self.status.setObjectName("caseStatus")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.load_button, self.save_button, self.final_button):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.slice_level)
        lay.addWidget(scroll, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.status)

        self.slice_level.toggled.connect(lambda on: self.refresh())
        self.load_button.clicked.connect(self.load_dialog)
        self.save_button.clicked.connect(lambda: self.save("corrected"))
        self.final_button.clicked.connect(lambda: self.save("final"))
        controller.sig_case_changed.connect(self._on_case_changed)
        controller.sig_saved.connect(self._on_saved)
        session.cursor_changed.connect(lambda idx: self.slice_level.isChecked() and self.refresh())
        self._build_boxes()
        self.refresh()

    # ------------------------------------------------------------------ classes
    def _build_boxes(self) -> None:
        for box in self.boxes.values():
            box.setParent(None)
            box.deleteLater()
        self.boxes = {}
        for i, name in enumerate(self.class_list):
            key = f"Alt+{i + 1}" if i < MAX_SHORTCUTS else ""
            box = QCheckBox(self.box_area)
            box.setObjectName(f"case_{name}")
            box.setToolTip(f"{name}: checked = present, unchecked = absent" + (f" ({key})" if key else ""))
            box.clicked.connect(lambda checked, n=name: self.set_state(n, bool(checked)))
            self.box_layout.addWidget(box)
            self.boxes[name] = box
        self.box_layout.addStretch(1)

    def set_class_list(self, class_list: ClassList) -> None:
        self.class_list = class_list
        cl = self.ctl.state.case_labels if self.ctl.state is not None else None
        if cl is not None and cl.class_list != class_list:
            fresh = CaseLabels(class_list)
            for name, v in cl.series.items():
                if name in class_list:
                    fresh.set(name, v)
            self.ctl.set_case_labels(fresh)
        self._build_boxes()
        self.refresh()

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a class list", "",
                                              "Class lists (*.txt *.json);;All files (*)")
        if path:
            try:
                self.set_class_list(ClassList.from_file(path))
            except (OSError, ValueError) as exc:
                self.ctl.sig_error.emit("Could not load the class list", f"{Path(path).name}: {exc}")

    # ------------------------------------------------------------------ state
    def labels(self) -> Optional[CaseLabels]:
        cl = self.ctl.case_labels()
        if cl is not None and cl.class_list != self.class_list:
            self.class_list = cl.class_list
            self._build_boxes()
        return cl

    def _slice(self) -> Optional[int]:
        return int(self.session.cursor_zyx[0]) if self.slice_level.isChecked() else None

    def get_state(self, name: str) -> Optional[bool]:
        cl = self.ctl.state.case_labels if self.ctl.state is not None else None
        if cl is None:
            return None
        z = self._slice()
        return cl.get(name) if z is None else cl.get_slice(z, name)

    def set_state(self, name: str, present: Optional[bool]) -> None:
        cl = self.labels()
        if cl is None:
            return
        z = self._slice()
        if z is None:
            cl.set(name, present)
        else:
            cl.set_slice(z, name, present)
        self.ctl.touch_case()

    def toggle_index(self, i: int) -> None:
        if self.ctl.state is None or i >= len(self.class_list):
            return
        name = self.class_list.names[i]
        self.set_state(name, not bool(self.get_state(name)))
        where = "series" if self._slice() is None else f"slice {self._slice() + 1}"
        self.ctl.sig_message.emit(f"{name}: {STATE_TEXT[self.get_state(name)]} ({where})")

    def _on_case_changed(self, cl) -> None:
        if self._watched is not None:
            self._watched.changed.disconnect(self.refresh)
        self._watched = cl
        if cl is not None:
            cl.changed.connect(self.refresh)
            if cl.class_list != self.class_list:
                self.class_list = cl.class_list
                self._build_boxes()
        self.refresh()

    def refresh(self) -> None:
        has_image = self.ctl.state is not None
        for i, (name, box) in enumerate(self.boxes.items()):
            state = self.get_state(name)
            key = f"Alt+{i + 1}  " if i < MAX_SHORTCUTS else ""
            box.setText(f"{key}{name} — {STATE_TEXT[state]}")
            box.setChecked(bool(state))
            box.setStyleSheet("" if state is not None else "color: #888;")
            box.setEnabled(has_image)
        for b in (self.save_button, self.final_button, self.slice_level):
            b.setEnabled(has_image)
        z = self._slice()
        self.title.setText("Findings for the series" if z is None else f"Findings for slice {z + 1}")

    def save(self, tag: str = "corrected"):
        self.labels()
        return self.ctl.save_case_labels(tag)

    def _on_saved(self, rec) -> None:
        if rec.kind == "case":
            self.status.setText(f"Saved ({rec.tag}, {rec.created_at[:19].replace('T', ' ')} UTC)")
