"""ProposalPanel: the AI proposal box of the Segmentation dock — what is proposed, show/hide
it, Accept all / this label / on this slice (keeping or replacing painted voxels), Reject."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QGridLayout, QGroupBox, QLabel, QPushButton,
                               QVBoxLayout)

from ..shortcuts import KEYS


class ProposalPanel(QGroupBox):
    """Widgets only: the buttons call the feature's commands, the state comes from the
    controller's ``sig_proposal_changed``; hidden while there is no proposal."""

    def __init__(self, controller, commands, session, parent=None):
        super().__init__("Proposal (AI model or prompts; not yet in the labels)", parent)
        self.setObjectName("proposalPanel")
        self.ctl, self.session = controller, session
        self.info = QLabel("", self)
        self.info.setObjectName("proposalInfo")
        self.info.setWordWrap(True)
        self.show_box = QCheckBox("Show the proposal (outlined, hatched)", self)
        self.show_box.setObjectName("proposalShow")
        self.show_box.setChecked(True)
        self.label_combo = QComboBox(self)
        self.label_combo.setObjectName("proposalLabel")
        self.label_combo.setToolTip("The label 'Accept this label' takes (follows the cursor)")
        self.replace = QCheckBox("Replace voxels I painted", self)
        self.replace.setObjectName("proposalReplace")
        self.replace.setToolTip("Off: voxels you labelled keep their label; on: the proposal wins")
        self.buttons = {}
        for key, text, slot, tip in (
                ("proposal_accept", "Accept all", commands.accept_all,
                 "Merge the whole proposal into the label map (one undo step)"),
                ("proposal_accept_label", "Accept this label", commands.accept_label,
                 "Merge only the chosen label"),
                ("proposal_accept_slice", "Accept on this slice", commands.accept_slice,
                 "Merge only the slice shown in the view used last"),
                ("proposal_reject", "Reject", commands.reject,
                 "Drop the proposal; the label map is not changed")):
            b = QPushButton(text, self)
            first, *rest = key.split("_")
            b.setObjectName(first + "".join(w.title() for w in rest))  # e.g. proposalAcceptLabel
            b.setToolTip(f"{tip} ({KEYS[key]})")
            b.clicked.connect(slot)
            self.buttons[key] = b
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.info)
        lay.addWidget(self.show_box)
        grid = QGridLayout()
        grid.addWidget(self.buttons["proposal_accept"], 0, 0)
        grid.addWidget(self.buttons["proposal_reject"], 0, 1)
        grid.addWidget(self.buttons["proposal_accept_label"], 1, 0)
        grid.addWidget(self.label_combo, 1, 1)
        grid.addWidget(self.buttons["proposal_accept_slice"], 2, 0)
        grid.addWidget(self.replace, 2, 1)
        lay.addLayout(grid)
        self.setStyleSheet("QGroupBox#proposalPanel { border: 1px dashed #c8a020; margin-top: 1.1em;"
                           " font-weight: bold; } QGroupBox#proposalPanel::title {"
                           " subcontrol-origin: margin; left: 6px; padding: 0 3px; color: #a07800; }"
                           " QGroupBox#proposalPanel QWidget { font-weight: normal; }")
        controller.sig_proposal_changed.connect(self._on_proposal)
        session.cursor_changed.connect(self._follow_cursor)
        self._on_proposal(controller.proposal)

    def button(self, key: str) -> QPushButton:
        return self.buttons[key]

    def chosen_label(self):
        return self.label_combo.currentData()

    def _on_proposal(self, prop) -> None:
        self.setVisible(prop is not None)
        self.label_combo.clear()
        if prop is None:
            self.info.setText("")
            return
        names = prop.names()
        for v, name in names.items():
            self.label_combo.addItem(f"{name} ({prop.counts[v]} voxels)", v)
        where = "the whole volume" if prop.z is None else f"slice {prop.z + 1}"
        total = sum(prop.counts.values())
        self.info.setText(f"<b>{prop.source}</b> on {where}: {total} voxels in "
                          f"{len(names)} label{'s' if len(names) != 1 else ''}. Drawn outlined and "
                          "hatched over your labels; nothing changes until you accept.")
        self._follow_cursor(self.session.cursor_zyx)

    def _follow_cursor(self, zyx) -> None:
        prop = self.ctl.proposal
        if prop is None or self.session.active is None:
            return
        try:
            v = prop.value_at(zyx)
        except IndexError:
            return
        i = self.label_combo.findData(v) if v else -1
        if i >= 0:
            self.label_combo.setCurrentIndex(i)
