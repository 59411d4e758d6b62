"""Menus and toolbars of the main window (actions get objectNames, shortcuts and tooltips)."""
from __future__ import annotations

from typing import Callable, Dict

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QMainWindow, QMenu, QToolBar

from medviewer.core.reformat import SLAB_MODES, SLAB_NAMES

from . import corner_text
from . import settings as st
from .features import AREAS
from .shortcuts import KEYS
from .tools import TOOLS


def _action(win: QMainWindow, acts: Dict[str, QAction], name: str, text: str, slot: Callable,
            tip: str = "", checkable: bool = False) -> QAction:
    act = QAction(text, win)
    act.setObjectName(f"action_{name}")
    key = KEYS.get(name)
    if key:
        act.setShortcut(QKeySequence(key))
    act.setToolTip(f"{tip or text.replace('&', '')}" + (f" ({key})" if key else ""))
    act.setStatusTip(tip or text.replace("&", ""))
    act.setCheckable(checkable)
    act.triggered.connect(lambda checked=False: slot())
    acts[name] = act
    return act


def add_window_actions(win: QMainWindow, menu, acts: Dict[str, QAction], items,
                       checkable=()) -> None:
    """Add ``items`` ((name, text, slot, tip) tuples; None = a separator) to ``menu`` (None:
    to no menu) as window-wide actions (their shortcuts work wherever the focus is)."""
    for item in items:
        if item is None:
            if menu is not None:
                menu.addSeparator()
            continue
        name, text, slot, tip = item
        act = _action(win, acts, name, text, slot, tip, name in checkable)
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if menu is not None:
            menu.addAction(act)


def build_menus(win) -> Dict[str, QAction]:
    """Creates File / View / Window / Tools / Help menus and the toolbar for a MainWindow."""
    acts: Dict[str, QAction] = {}
    bar = win.menuBar()

    m = bar.addMenu("&File")
    m.addAction(_action(win, acts, "open_files", "&Open file(s)…", win.open_files_dialog,
                        "Open DICOM, NIfTI, NRRD, MHA… files"))
    m.addAction(_action(win, acts, "open_folder", "Open &folder…", win.open_folder_dialog,
                        "Open every series in a folder (recursive)"))
    m.addAction(_action(win, acts, "open_dicomdir", "Open &DICOMDIR…", win.open_dicomdir_dialog))
    win.recent_menu = QMenu("&Recent", m)
    win.recent_menu.setObjectName("recentMenu")
    m.addMenu(win.recent_menu)
    m.addSeparator()
    m.addAction(_action(win, acts, "screenshot", "Save &screenshot…", win.save_screenshot_dialog))
    m.addSeparator()
    for name, key, text, tip, on in (
            ("anonymise_screenshots", st.ANONYMISE_SCREENSHOTS, "Anonymise scr&eenshots",
             "Hide patient names, IDs and dates in saved screenshots",
             st.anonymise_screenshots(win.settings)),
            ("anonymise_exports", st.ANONYMISE_EXPORTS, "Anonymise e&xports",
             "DICOM SEG, label maps and case labels name the patient by a pseudonym",
             st.anonymise_exports(win.settings))):
        m.addAction(_action(win, acts, name, text, lambda k=key, n=name: win.settings.setValue(
            k, acts[n].isChecked()), tip, checkable=True))
        acts[name].setChecked(on)
    m.addSeparator()
    m.addAction(_action(win, acts, "quit", "&Quit", win.close))

    m = bar.addMenu("&View")
    win.view_menu = m  # features add their entries at its end (feature menu key "view")
    group = QActionGroup(win)
    for layout, text in (("tri", "&Tri-planar"), ("axial", "&Axial only"),
                         ("coronal", "&Coronal only"), ("sagittal", "&Sagittal only")):
        act = _action(win, acts, f"layout_{layout}", text, lambda n=layout: win.set_layout(n),
                      checkable=True)
        group.addAction(act)
        m.addAction(act)
    m.addSeparator()
    m.addAction(_action(win, acts, "reset_view", "&Reset zoom/pan", win.tri.reset_views))
    m.addAction(_action(win, acts, "reset_obliques", "Reset o&bliques", win.tri.reset_obliques,
                        "Back to the axial, coronal and sagittal planes (Ctrl+drag in a view "
                        "rotates them)"))
    win.slab_menu = m.addMenu("S&lab")  # filled with the toolbar's slab controls
    win.slab_menu.setObjectName("slabMenu")
    m.addAction(_action(win, acts, "resample", "Resample to &even spacing", win.resample_active,
                        "Resample the active series to even slice spacing (linear, new volume)"))
    acts["resample"].setEnabled(False)
    m.addAction(_action(win, acts, "hide_patient", "&Hide patient details",
                        win.toggle_patient_details,
                        "Hide patient names, IDs and dates in the browsers, info panel, view corners and title",
                        checkable=True))
    acts["hide_patient"].setChecked(win.privacy.toggled)
    m.addAction(_action(win, acts, "reverse_wheel", "Re&verse mouse wheel",
                        lambda: win.set_wheel_reversed(acts["reverse_wheel"].isChecked()),
                        "Wheel towards you goes to the previous image instead of the next",
                        checkable=True))
    acts["reverse_wheel"].setChecked(st.reverse_wheel(win.settings))
    win.overlay_menu = m.addMenu("Corner &overlays")
    win.overlay_menu.setObjectName("overlayMenu")
    shown = set(st.overlay_fields(win.settings, corner_text.FIELDS))
    for key, text in corner_text.FIELDS.items():
        act = _action(win, acts, f"overlay_{key}", text, win.apply_overlay_fields,
                      f"Show the {text.lower()} in the corners of the slice views",
                      checkable=True)
        act.setChecked(key in shown)
        win.overlay_menu.addAction(act)
    win.docks_menu = m.addMenu("&Panels")

    bar.addMenu(win.presets.menu)

    m = bar.addMenu("&Tools")
    win.tools_menu = m  # features add their entries at its end (feature menu key "tools")
    tb = QToolBar("Tools", win)
    tb.setObjectName("toolsToolbar")
    tgroup = QActionGroup(win)
    for name, (label, _key, tip) in TOOLS.items():
        act = _action(win, acts, f"tool_{name}", label, lambda n=name: win.set_tool(n), tip, True)
        tgroup.addAction(act)
        m.addAction(act)
        tb.addAction(act)
    acts["tool_navigate"].setChecked(True)
    m.addSeparator()
    m.addAction(_action(win, acts, "clear_measurements", "&Clear measurements",
                        win.tri.clear_measurements))
    tb.addSeparator()
    tb.addWidget(win.presets)
    tb.addSeparator()
    add_slab_controls(win, tb)
    tb.addSeparator()
    for name in ("layout_tri", "layout_axial", "layout_coronal", "layout_sagittal"):
        tb.addAction(acts[name])
    win.addToolBar(tb)

    m = bar.addMenu("&Help")
    win.help_menu = m  # feature menus are inserted before it
    m.addAction(_action(win, acts, "help_shortcuts", "&Keyboard shortcuts", win.show_shortcuts))
    m.addAction(_action(win, acts, "about", "&About MedViewer", win.show_about))
    return acts


SLAB_MENU_MM = (0.0, 5.0, 10.0, 20.0, 40.0)  # View > Slab thicknesses (any in the toolbar)


def add_slab_controls(win, tb: QToolBar) -> None:
    """Slab mode and thickness (mm; 0 = thin) for every MPR plane: ``win.slab_mode_box``,
    ``win.slab_mm_box``."""
    mode = QComboBox(tb)
    mode.setObjectName("slabModeBox")
    for key in SLAB_MODES:
        mode.addItem(SLAB_NAMES[key], key)
    mode.setToolTip("Thick-slab rendering: maximum (MIP), minimum (MinIP) or average intensity")
    mm = QDoubleSpinBox(tb)
    mm.setObjectName("slabMmBox")
    mm.setRange(0.0, 300.0)
    mm.setDecimals(1)
    mm.setSingleStep(2.5)
    mm.setSuffix(" mm")
    mm.setSpecialValueText("thin")
    mm.setToolTip("Slab thickness in mm in every plane (0 = thin slices)")
    mm.setKeyboardTracking(False)

    # View > Slab: the same choices (modes, common thicknesses), kept in step with the toolbar
    menu = getattr(win, "slab_menu", None)
    mode_acts, mm_acts = {}, {}
    if menu is not None:
        group = QActionGroup(win)
        for thickness in SLAB_MENU_MM:
            act = menu.addAction("Thin slices" if thickness == 0 else f"{thickness:g} mm")
            act.setObjectName(f"action_slab_{thickness:g}mm")
            act.setCheckable(True)
            act.triggered.connect(lambda _c=False, t=thickness: mm.setValue(t))
            group.addAction(act)
            mm_acts[thickness] = act
        menu.addSeparator()
        group = QActionGroup(win)
        for key in SLAB_MODES:
            act = menu.addAction(SLAB_NAMES[key])
            act.setObjectName(f"action_slab_{key}")
            act.setCheckable(True)
            act.triggered.connect(lambda _c=False, k=key: mode.setCurrentIndex(mode.findData(k)))
            group.addAction(act)
            mode_acts[key] = act

    def show_checks():
        for key, act in mode_acts.items():
            act.setChecked(key == mode.currentData())
        for thickness, act in mm_acts.items():
            act.setChecked(abs(thickness - mm.value()) < 1e-6)

    def apply():
        win.tri.set_slab(mode.currentData(), mm.value())
        show_checks()

    mode.currentIndexChanged.connect(lambda _i: apply())
    mm.valueChanged.connect(lambda _v: apply())
    show_checks()
    label = QLabel(" Slab ", tb)
    tb.addWidget(label)
    tb.addWidget(mode)
    tb.addWidget(mm)
    win.slab_mode_box, win.slab_mm_box = mode, mm


def build_declared(win, declared, menus: Dict[str, QMenu]) -> None:
    """Build what the features declared (``features.Declared``) into the main window ``win``:
    their menus before Help (``menus`` gets key -> QMenu), their window-wide actions, and
    their docks (tabbed with the dock they name, hidden when asked, raised last)."""
    bar = win.menuBar()
    for spec in sorted(declared.menus, key=lambda m: m.order):
        menu = QMenu(spec.title, win)
        menu.setObjectName(spec.object_name)
        bar.insertMenu(win.help_menu.menuAction(), menu)
        menus[spec.key] = menu
    window_acts = []
    for key, item, checkable in declared.actions:
        target = menus[key] if key is not None else None
        if item is None:
            if target is not None:
                target.addSeparator()
            continue
        add_window_actions(win, target, win.actions_by_name, [item],
                           checkable=(item[0],) if checkable else ())
        window_acts.append(win.actions_by_name[item[0]])
    win.addActions(window_acts)  # their shortcuts work wherever the focus is
    for spec in declared.docks:
        dock = win._dock(spec.title, spec.name, spec.widget, AREAS[spec.area], spec.tab_title)
        if spec.tab_with is not None:
            win.tabifyDockWidget(win.docks[spec.tab_with], dock)
        if spec.hidden:
            dock.hide()
    for name in declared.raise_docks:
        win.docks[name].raise_()
