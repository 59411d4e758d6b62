"""LabelPanel: the label table editor (colour, name, visible, lock), active label, opacity and
fill/outline display, adding/removing labels and importing label lists."""
from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QColorDialog, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QMenu, QPushButton, QSlider, QTableWidget,
                               QTableWidgetItem, QToolButton, QVBoxLayout, QWidget)

from medviewer.core.labels import LabelTable


def _label_lists_dir() -> Path:
    """``medviewer/resources/labels`` of an installed package (the wheel ships the repo's
    ``resources/`` there), else ``<checkout>/resources/labels`` (source tree, editable)."""
    shipped = Path(str(importlib.resources.files("medviewer") / "resources" / "labels"))
    checkout = Path(__file__).resolve().parents[3]
    if not shipped.is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "resources" / "labels"
    return shipped


RESOURCES = _label_lists_dir()
LABEL_LISTS = {"Import TotalSegmentator CT class names": "totalsegmentator_total_ct.csv",
               "Import TotalSegmentator MR class names": "totalsegmentator_total_mr.csv"}
COL_COLOR, COL_VALUE, COL_NAME, COL_VISIBLE, COL_LOCK = range(5)


class LabelPanel(QWidget):
    """Edits the active label map's table through the AnnotationController."""

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.setObjectName("labelPanel")
        self.ctl = controller
        self._filling = False
        self.color_dialog: Optional[QColorDialog] = None

        self.new_button = QPushButton("New label map", self)
        self.new_button.setObjectName("newLabelMap")
        self.new_button.setToolTip("Start an empty label map on the active image")
        self.add_button = QPushButton("Add", self)
        self.add_button.setObjectName("addLabel")
        self.add_button.setToolTip("Add a label (next free value, palette colour)")
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setObjectName("removeLabel")
        self.remove_button.setToolTip("Erase every voxel of the selected label and remove it (undoable)")
        self.import_button = QToolButton(self)
        self.import_button.setObjectName("importLabels")
        self.import_button.setText("Import…")
        self.import_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.import_button)
        menu.addAction("Import label list file…", self.import_dialog)
        for text, fname in LABEL_LISTS.items():
            act = menu.addAction(text, lambda f=fname: self.import_file(RESOURCES / f))
            act.setEnabled((RESOURCES / fname).exists())
        self.import_button.setMenu(menu)
        top = QHBoxLayout()
        for w in (self.new_button, self.add_button, self.remove_button, self.import_button):
            top.addWidget(w)

        self.table = QTableWidget(0, 5, self)
        self.table.setObjectName("labelTable")
        self.table.setHorizontalHeaderLabels(["", "Value", "Name", "Show", "Lock"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_COLOR, 26), (COL_VALUE, 48), (COL_VISIBLE, 44), (COL_LOCK, 40)):
            hdr.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            self.table.setColumnWidth(col, width)
        self.table.setToolTip("Click the colour to change it; double-click the name to rename; "
                              "the selected row is the label the brush paints")

        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setObjectName("labelOpacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setToolTip("Overlay opacity")
        self.outline = QCheckBox("Outline", self)
        self.outline.setObjectName("labelOutline")
        self.outline.setToolTip("Show only the label boundaries instead of filled regions")
        self.shown = QCheckBox("Show", self)
        self.shown.setObjectName("labelMapVisible")
        self.shown.setChecked(True)
        self.shown.setToolTip("Show or hide the whole label map")
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity", self))
        row.addWidget(self.opacity, 1)
        row.addWidget(self.outline)
        row.addWidget(self.shown)
        self.active_label = QLabel("", self)
        self.active_label.setObjectName("activeLabelText")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(row)
        lay.addWidget(self.active_label)

        self.new_button.clicked.connect(lambda: self.ctl.new_labelmap())
        self.add_button.clicked.connect(self.add_label)
        self.remove_button.clicked.connect(self.remove_selected)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.cellClicked.connect(self._on_cell_clicked)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.opacity.valueChanged.connect(self._on_display_changed)
        self.outline.toggled.connect(self._on_display_changed)
        self.shown.toggled.connect(self._on_display_changed)
        controller.sig_labelmap_changed.connect(lambda lm: self.refresh())
        controller.sig_table_changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ model -> widgets
    @property
    def labelmap(self):
        return self.ctl.labelmap

    def refresh(self) -> None:
        lm = self.labelmap
        self._filling = True
        try:
            labels = list(lm.table) if lm is not None else []
            if [self.value_at(r) for r in range(self.table.rowCount())] == [lab.value for lab in labels]:
                self._update_rows(labels)  # same labels: edit in place (safe inside itemChanged)
                labels = []
            else:
                self.table.setRowCount(len(labels))
            for r, lab in enumerate(labels):
                sw = QTableWidgetItem("")
                _paint_swatch(sw, lab.color)
                sw.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                sw.setToolTip("Click to change the colour")
                val = QTableWidgetItem(str(lab.value))
                val.setData(Qt.ItemDataRole.UserRole, lab.value)
                val.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                name = QTableWidgetItem(lab.name)
                vis, lock = QTableWidgetItem(""), QTableWidgetItem("")
                for item, on in ((vis, lab.visible), (lock, lab.locked)):
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable
                                  | Qt.ItemFlag.ItemIsSelectable)
                    item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                for col, item in ((COL_COLOR, sw), (COL_VALUE, val), (COL_NAME, name),
                                  (COL_VISIBLE, vis), (COL_LOCK, lock)):
                    self.table.setItem(r, col, item)
            self._select_value(self.ctl.active_label)
            if lm is not None:
                self.opacity.setValue(int(round(lm.opacity * 100)))
                self.outline.setChecked(bool(lm.outline))
                self.shown.setChecked(bool(lm.visible))
        finally:
            self._filling = False
        for w in (self.add_button, self.remove_button, self.opacity, self.outline, self.shown):
            w.setEnabled(lm is not None)
        self.new_button.setEnabled(self.ctl.volume is not None)
        self._show_active()

    def _update_rows(self, labels) -> None:
        for r, lab in enumerate(labels):
            _paint_swatch(self.table.item(r, COL_COLOR), lab.color)
            if self.table.item(r, COL_NAME).text() != lab.name:
                self.table.item(r, COL_NAME).setText(lab.name)
            for col, on in ((COL_VISIBLE, lab.visible), (COL_LOCK, lab.locked)):
                want = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
                if self.table.item(r, col).checkState() != want:
                    self.table.item(r, col).setCheckState(want)

    def _select_value(self, value: int) -> None:
        r = self.row_of(value)
        if r is not None:
            self.table.selectRow(r)

    def row_of(self, value: int) -> Optional[int]:
        for r in range(self.table.rowCount()):
            if self.value_at(r) == int(value):
                return r
        return None

    def value_at(self, row: int) -> int:
        return int(self.table.item(row, COL_VALUE).data(Qt.ItemDataRole.UserRole))

    def _show_active(self) -> None:
        lm = self.labelmap
        lab = lm.table.get(self.ctl.active_label) if lm is not None else None
        if lab is None:
            self.active_label.setText("No label map: paint, or press “New label map”"
                                      if lm is None else "No active label")
        else:
            self.active_label.setText(f"Active: {lab.value} {lab.name}" + (" (locked)" if lab.locked else ""))

    # ------------------------------------------------------------------ widgets -> model
    def _on_selection(self) -> None:
        if self._filling:
            return
        rows = {i.row() for i in self.table.selectedItems()}
        if rows:
            self.ctl.active_label = self.value_at(min(rows))
            self._show_active()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or self.labelmap is None:
            return
        value, table = self.value_at(item.row()), self.labelmap.table
        if item.column() == COL_NAME and item.text() != table.get(value).name:
            table.rename(value, item.text())
        elif item.column() == COL_VISIBLE:
            table.set_visible(value, item.checkState() == Qt.CheckState.Checked)
        elif item.column() == COL_LOCK:
            table.set_locked(value, item.checkState() == Qt.CheckState.Checked)

    def _on_cell_clicked(self, row: int, col: int) -> None:
        if col == COL_COLOR and self.labelmap is not None:
            self.choose_color(self.value_at(row))

    def choose_color(self, value: int) -> QColorDialog:
        """A (non-modal) colour dialog for a label; the choice is applied when accepted."""
        lab = self.labelmap.table.get(value)
        dlg = QColorDialog(QColor(*lab.color), self)
        dlg.setObjectName("labelColorDialog")
        dlg.setWindowTitle(f"Colour of {lab.name}")
        dlg.colorSelected.connect(lambda c, v=value: self.set_color(v, (c.red(), c.green(), c.blue())))
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self.color_dialog = dlg
        return dlg

    def set_color(self, value: int, rgb) -> None:
        if self.labelmap is not None:
            self.labelmap.table.set_color(value, rgb)

    def add_label(self):
        lm = self.labelmap
        if lm is None:
            return None
        lab = lm.table.add(f"Label {lm.table.next_value()}")
        self.ctl.active_label = lab.value
        self.refresh()
        return lab

    def remove_selected(self) -> None:
        if self.labelmap is not None and self.labelmap.table.get(self.ctl.active_label) is not None:
            self.ctl.remove_label(self.ctl.active_label)
            self.refresh()

    def _on_display_changed(self) -> None:
        lm = self.labelmap
        if self._filling or lm is None:
            return
        lm.opacity = self.opacity.value() / 100.0
        lm.outline = self.outline.isChecked()
        lm.visible = self.shown.isChecked()
        self.ctl.refresh_display()

    # ------------------------------------------------------------------ import
    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a label list", str(RESOURCES),
                                              "Label lists (*.csv *.txt *.ctbl *.json *.lut);;All files (*)")
        if path:
            self.import_file(path)

    def import_file(self, path) -> Optional[LabelTable]:
        """Merge a label list file into the table (names and colours of its values)."""
        try:
            table = LabelTable.from_file(path)
        except (OSError, ValueError, KeyError) as exc:
            self.ctl.sig_error.emit("Could not import the label list", f"{Path(path).name}: {exc}")
            return None
        self.ctl.import_table(table)
        self.ctl.sig_message.emit(f"Imported {len(table)} labels from {Path(path).name}")
        return table


def _paint_swatch(item: QTableWidgetItem, rgb) -> None:
    """The label colour as a background AND an icon: the icon stays visible on the selected
    (active) row, whose selection highlight would hide a background."""
    colour = QColor(*rgb)
    item.setBackground(colour)
    pix = QPixmap(14, 14)
    pix.fill(colour)
    item.setIcon(QIcon(pix))
