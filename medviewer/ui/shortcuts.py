"""Keyboard shortcuts and mouse gestures: the single list the menus and the Help dialog use."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout

from .tools import TOOLS
from .window_panel import PRESET_SHORTCUTS

KEYS = {
    "open_files": "Ctrl+O",
    "open_folder": "Ctrl+Shift+O",
    "open_dicomdir": "Ctrl+Alt+O",
    "screenshot": "Ctrl+Shift+S",
    "quit": "Ctrl+Q",
    "layout_tri": "T",
    "layout_axial": "1",
    "layout_coronal": "2",
    "layout_sagittal": "3",
    "reset_view": "R",
    "reset_obliques": "Shift+R",
    "view3d_toggle": "4",
    "view3d_reset_camera": "Ctrl+4",
    "hide_patient": "Ctrl+Shift+H",
    "clear_measurements": "Ctrl+Backspace",
    "help_shortcuts": "F1",
    "labels_new": "Ctrl+Shift+N",
    "labels_save": "Ctrl+S",
    "labels_save_as": "Ctrl+Alt+S",
    "undo": "Ctrl+Z",
    "redo": "Ctrl+Y",
    "redo_alt": "Ctrl+Shift+Z",
    "radius_down": "[",
    "radius_up": "]",
    "ai_run_slice": "Ctrl+R",
    "ai_run_volume": "Ctrl+Shift+R",
    "ai_cancel": "Esc",
    "ai_goto_uncertain": "U",
    "review_next": "N",
    "case_label_1": "Alt+1",
    "case_label_2": "Alt+2",
    "case_label_3": "Alt+3",
    "case_label_4": "Alt+4",
    "case_label_5": "Alt+5",
    "case_label_6": "Alt+6",
    "case_label_7": "Alt+7",
    "case_label_8": "Alt+8",
    "case_label_9": "Alt+9",
    "ai_finetune": "Ctrl+Shift+F",
    "proposal_accept": "Ctrl+Return",
    "proposal_accept_label": "Ctrl+Shift+Return",
    "proposal_accept_slice": "Ctrl+Alt+Return",
    "proposal_reject": "Ctrl+Shift+Backspace",
    "labels_history": "Ctrl+H",
    "register_series": "Ctrl+Alt+R",
    "fusion_toggle": "Ctrl+Alt+F",
    "fusion_mode": "Ctrl+Alt+M",
    "fusion_blend_down": "Alt+Left",
    "fusion_blend_up": "Alt+Right",
    "enhance_image": "Ctrl+Alt+E",
    # only while the Prompt tool is active
    "prompt_positive": "A",
    "prompt_negative": "S",
    "prompt_box": "X",
    "prompt_scribble": "C",
    "prompt_3d": "G",
    "prompt_accept": "Return",
    "prompt_reject": "Esc",
    "prompt_clear": "Shift+Backspace",
}
KEYS.update({f"tool_{name}": key for name, (_, key, _) in TOOLS.items()})

MOUSE = [
    ("Wheel / PageUp / PageDown / Up / Down", "Previous / next image: InstanceNumber order, "
     "else head to feet (Shift: 10 slices; View > Reverse mouse wheel)"),
    ("Left click or drag", "Move the cursor; all views follow (Navigate tool)"),
    ("Right drag", "Window/level: horizontal = width, vertical = centre"),
    ("Middle drag", "Pan"),
    ("Ctrl+wheel", "Zoom"),
    ("Ctrl+left drag", "Rotate the MPR planes together about the cursor (oblique); "
                       "View > Reset obliques goes back"),
    ("Drop files or folders", "Open them"),
    ("3D pane: left drag / right drag or wheel / middle drag", "Rotate / zoom / pan"),
    ("3D pane: left click on a surface", "Move the crosshair there"),
    ("Brush / eraser: left drag", "Paint / erase a stroke with the brush circle (one undo step); "
                                  "Esc while dragging drops the stroke"),
    ("Flood fill: left click", "Fill the connected region within the range (2D, or 3D when set)"),
    ("Polygon: clicks, or a left drag", "Add points, or draw a lasso; double-click or Enter fills, Esc cancels"),
    ("Prompt: left click / Shift+left click / right click", "Positive / flipped / negative click"),
    ("Prompt: left drag", "A scribble (click and scribble modes) or a box (box mode)"),
    ("Fusion swipe: left drag on the yellow line", "Move the split between the fixed (left) "
                                                   "and the registered series (right)"),
]


def shortcut_rows() -> list:
    rows = [
        (KEYS["open_files"], "Open file(s)"), (KEYS["open_folder"], "Open folder"),
        (KEYS["open_dicomdir"], "Open DICOMDIR"), (KEYS["screenshot"], "Save a screenshot"),
        (KEYS["quit"], "Quit"), (KEYS["layout_tri"], "Tri-planar layout"),
        (KEYS["layout_axial"], "Axial only"), (KEYS["layout_coronal"], "Coronal only"),
        (KEYS["layout_sagittal"], "Sagittal only"), (KEYS["reset_view"], "Reset zoom and pan"),
        (KEYS["reset_obliques"], "Reset obliques: back to axial / coronal / sagittal planes"),
        (KEYS["view3d_toggle"], "Fourth pane: 3D view / image information"),
        (KEYS["view3d_reset_camera"], "Reset the 3D camera (front view)"),
        (KEYS["clear_measurements"], "Clear measurements"),
        (KEYS["hide_patient"], "Hide / show patient details (names, IDs, dates)"),
    ]
    rows += [(key, f"Tool: {label} — {tip}") for _, (label, key, tip) in TOOLS.items()]
    rows += [(KEYS["radius_down"], "Brush radius smaller"), (KEYS["radius_up"], "Brush radius larger"),
             (KEYS["undo"], "Undo the last label edit"),
             (f"{KEYS['redo']} / {KEYS['redo_alt']}", "Redo"),
             (KEYS["labels_save"], "Save labels (a 'corrected' record, with effort)"),
             (KEYS["labels_save_as"], "Save labels as… another workspace folder (e.g. when "
                                      "this one is read-only or gone), with their history"),
             (KEYS["labels_new"], "New label map"),
             (KEYS["labels_history"], "Label history: open, compare, revert saved records"),
             (KEYS["proposal_accept"], "Accept the AI proposal (one undo step; painted voxels kept)"),
             (KEYS["proposal_accept_label"], "Accept the proposal's label under the cursor"),
             (KEYS["proposal_accept_slice"], "Accept the proposal on this slice (view used last)"),
             (KEYS["proposal_reject"], "Reject the AI proposal (the label map is unchanged)"),
             (KEYS["prompt_positive"], "Prompt tool: positive clicks (the object is here)"),
             (KEYS["prompt_negative"], "Prompt tool: negative clicks (not the object)"),
             (KEYS["prompt_box"], "Prompt tool: box (drag around the object)"),
             (KEYS["prompt_scribble"], "Prompt tool: scribble (drag; Shift: negative)"),
             (KEYS["prompt_3d"], "Prompt tool: propagate the result through the neighbouring slices"),
             (f"{KEYS['prompt_accept']} / Enter", "Prompt tool: accept the result into the active label (one undo step)"),
             (KEYS["prompt_reject"], "Prompt tool: reject the result and clear the prompts"),
             (KEYS["undo"], "Prompt tool: undo the last prompt (while prompts are given)"),
             (KEYS["prompt_clear"], "Prompt tool: clear the prompts"),
             ("Alt+1 … Alt+9", "Toggle case label 1 … 9 (Case labels panel)"),
             (KEYS["ai_run_slice"], "AI: run the selected model on the current slice (a 2D image: the image)"),
             (KEYS["ai_run_volume"], "AI: run the selected model on the whole volume"),
             (KEYS["ai_cancel"], "AI: cancel the running job (while one runs; otherwise the Navigate tool)"),
             (KEYS["ai_goto_uncertain"], "AI: go to the most uncertain slice (highest mean entropy)"),
             (KEYS["review_next"], "AI: open the next case in the review queue (most uncertain first)"),
             (KEYS["ai_finetune"], "AI: fine-tune the model on the corrections (Fine-tune dialog)"),
             (KEYS["register_series"], "Registration: register a moving series to a fixed one"),
             (KEYS["fusion_toggle"], "Registration: show the registered series fused over the "
                                     "fixed one, or the fixed alone"),
             (KEYS["fusion_mode"], "Registration: next fusion mode (blend, checkerboard, swipe)"),
             (f"{KEYS['fusion_blend_down']} / {KEYS['fusion_blend_up']}",
              "Registration: blend 10 % less / more of the registered series")]
    rows += [(key, f"Window preset: {name}") for name, key in PRESET_SHORTCUTS.items()]
    rows += [(KEYS["help_shortcuts"], "This list")]
    return rows + MOUSE


class ShortcutsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts and mouse")
        rows = shortcut_rows()
        table = QTableWidget(len(rows), 2, self)
        table.setObjectName("shortcutsTable")
        table.setHorizontalHeaderLabels(["Keys / mouse", "Action"])
        for i, (key, text) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(key))
            table.setItem(i, 1, QTableWidgetItem(text))
        table.setWordWrap(True)
        table.resizeColumnToContents(0)
        table.setColumnWidth(0, min(table.columnWidth(0), 230))  # long mouse rows wrap instead
        table.setColumnWidth(1, 560)
        table.horizontalHeader().setStretchLastSection(True)
        table.resizeRowsToContents()  # after the widths are final, so rows fit their text
        table.verticalHeader().setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
        self.resize(840, 600)
