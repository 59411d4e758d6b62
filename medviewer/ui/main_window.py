"""MainWindow: the viewer's own views, docks, menus, loading and settings, plus the features
(annotation, AI, review…) built from what they declare to the feature registry; it routes
signals between them through the event hub."""
from __future__ import annotations

from typing import List, Optional

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QTabBar, QVBoxLayout, QWidget)

from medviewer.core.volume import Volume
from medviewer.services.context import AppServices

from . import corner_text
from . import settings as st
from .features import AppEvents, FeatureHost, FeatureRegistry, run_leave_guards
from .loader import LoadController, LoadProgress
from .menus import build_declared, build_menus
from .privacy import PatientPrivacy
from .qt_jobs import QtJobBridge
from .series_browser import SeriesBrowser
from .shortcuts import ShortcutsDialog
from .status_readout import StatusReadout
from .tag_browser import TagBrowser
from .tools import TOOLS
from .triplanar import LAYOUTS, TriPlanarView, shown_description
from .window_panel import WindowPresets

WL_SENSITIVITY = 1.0 / 300.0  # window change per screen pixel, as a fraction of the width


# Bump when docks are added or removed: Qt then ignores a window state saved by another
# version instead of stacking the new docks into a cramped column.
DOCK_STATE_VERSION = 7  # series, tags, case labels, segmentation, label history, AI, review, effort,
# registration, findings

def default_features() -> list:
    """The feature classes of the app, in build order (later ones use what earlier ones share)."""
    from .ai.wiring import AiFeature  # reads the model folders only: torch loads with a job
    from .annotation.wiring import AnnotationFeature
    from .enhance.wiring import EnhanceFeature
    from .findings.wiring import FindingsFeature
    from .pacs.wiring import PacsFeature
    from .registration.wiring import RegistrationFeature
    from .training.queue_wiring import ReviewFeature
    from .view3d.wiring import View3DFeature  # VTK is imported when the 3D pane is first shown

    return [AnnotationFeature, AiFeature, ReviewFeature, View3DFeature, PacsFeature,
            RegistrationFeature, EnhanceFeature, FindingsFeature]


class MainWindow(QMainWindow):
    def __init__(self, services: Optional[AppServices] = None, features: Optional[list] = None):
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("MedViewer")
        self.setAcceptDrops(True)
        self.settings = st.app_settings()
        self.services = services or AppServices.create(self.settings)
        self.session = self.services.session
        self.bridge = QtJobBridge(parent=self, runner=self.services.runner)
        self.errors: List[str] = []  # messages shown in error dialogs (tests read them)
        self.privacy = PatientPrivacy(self.settings, self)

        self.tri = TriPlanarView(self.session, self)
        self.banner = QLabel(self)
        self.banner.setObjectName("warningBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #5a4500; color: #ffe9a8; padding: 4px;")
        self.banner.setVisible(False)
        central = QWidget(self)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.banner)
        lay.addWidget(self.tri, 1)
        self.setCentralWidget(central)

        self.presets = WindowPresets(self.session, self)
        self.series_browser = SeriesBrowser(self)
        self.tag_browser = TagBrowser(self.session, self.bridge, self)
        self.readout = StatusReadout(self.statusBar())
        self.progress = LoadProgress(self)
        self.statusBar().addPermanentWidget(self.progress)
        # the readout sits on the right, at most half the bar's width (elided): the stretch
        # on the left is where the messages that confirm actions are shown
        self.statusBar().addPermanentWidget(self.readout)
        self.loader = LoadController(self.session, self.bridge, self.progress, self)
        self.actions_by_name = build_menus(self)
        self.docks = {}
        self.series_dock = self._dock("Series", "seriesDock", self.series_browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tag_dock = self._dock("DICOM tags", "tagDock", self.tag_browser,
                                   Qt.DockWidgetArea.RightDockWidgetArea, "Tags")

        for view in self.tri.views.values():
            view.sig_readout.connect(self.readout.setText)
            view.sig_wl_drag.connect(self._on_wl_drag)
            view.sig_measured.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.series_browser.sig_load_requested.connect(self.request_series)
        self.loader.sig_catalogue.connect(self.series_browser.add_catalogue)
        self.loader.sig_thumbnail.connect(self.series_browser.set_thumbnail)
        self.loader.sig_error.connect(self.show_error)
        self.loader.sig_message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.loader.sig_loaded.connect(self._on_loaded)
        self.session.active_changed.connect(self._on_active_changed)
        self.session.cursor_changed.connect(self._on_cursor_changed)
        self.events = AppEvents(self)
        self.events.sig_status.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.events.sig_error.connect(self.show_error)
        self.features = {}
        self._leave_guards: list = []
        self._close_confirmed = False
        self.privacy.sig_changed.connect(self._on_privacy_changed)
        self._on_privacy_changed(self.privacy.hidden)
        self._install_features(default_features() if features is None else features)
        self.resizeDocks([self.series_dock, self.tag_dock], [330, 420], Qt.Orientation.Horizontal)
        self._restore_settings()

    def _dock(self, title: str, name: str, widget: QWidget, area, tab_title: str = "") -> QDockWidget:
        """A dock called ``title`` in View > Panels and its tooltips; its tab and title bar
        read ``tab_title`` when given (tabbed docks share the width: long titles elide)."""
        dock = QDockWidget(tab_title or title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setProperty("fullTitle", title)
        dock.toggleViewAction().setText(title)
        self.addDockWidget(area, dock)
        self.docks_menu.addAction(dock.toggleViewAction())
        self.docks[name] = dock
        dock.dockLocationChanged.connect(lambda *_: QTimer.singleShot(0, self._tab_tooltips))
        return dock

    def _tab_tooltips(self) -> None:
        """Dock tabs get their dock's full title as tooltip (Qt makes the tab bars as docks
        are tabbed, so this runs again when a dock moves)."""
        full = {d.windowTitle(): d.property("fullTitle") for d in self.docks.values()}
        for bar in self.findChildren(QTabBar):
            for i in range(bar.count()):
                if bar.tabText(i) in full:
                    bar.setTabToolTip(i, full[bar.tabText(i)])

    # ------------------------------------------------------------------ features
    def _install_features(self, classes: list) -> None:
        """Build each feature (in order), then its declared menus, actions and docks, then
        let each feature start (its actions exist by then)."""
        registry = FeatureRegistry()
        host = FeatureHost(window=self, services=self.services, bridge=self.bridge,
                           settings=self.settings, views=self.tri.views, tri=self.tri,
                           events=self.events, actions=self.actions_by_name,
                           menus={"view": self.view_menu, "tools": self.tools_menu},
                           docks=self.docks, registry=registry, status_bar=self.statusBar(),
                           show_error=self.show_error, show_notice=self.show_notice,
                           confirm_leave=self.confirm_leave,
                           withdraw_notice=self.withdraw_notice, privacy=self.privacy,
                           open_paths=self.open_paths, add_series=self.add_derived_series)
        self.feature_host = host
        for cls in classes:
            feature = cls(host)
            self.features[feature.name] = feature
        build_declared(self, registry.declared, host.menus)
        self._leave_guards = list(registry.declared.leave_guards)
        for feature in self.features.values():
            feature.start()

    def __getattr__(self, name: str):
        """A feature by its name (``win.ai``, ``win.annotation``, ``win.review``)."""
        features = self.__dict__.get("features")
        if features is not None and name in features:
            return features[name]
        raise AttributeError(name)

    @property
    def finetune(self):
        """The fine-tuning run controller (owned by the review feature)."""
        return self.features["review"].finetune

    # ------------------------------------------------------------------ leaving
    def confirm_leave(self, what: str, proceed, closing: bool = False) -> bool:
        """Ask the features' leave guards (e.g. unsaved strokes). True: go ahead now
        (``proceed`` is not called); False: a question is open and ``proceed()`` runs once
        the user agreed."""
        return run_leave_guards(self._leave_guards, what, proceed, closing)

    def add_derived_series(self, volume: Volume, source: Optional[Volume] = None) -> str:
        """A series made here (registered, resampled, enhanced…; never replacing its source)
        added to the session, inactive, and to the series browser under the study of
        ``source`` (the volume it came from), where a double-click shows it like any other.
        Returns its key."""
        import dataclasses

        from medviewer.services.studies import Catalogue, SeriesEntry

        from .thumbnails import thumbnail_array

        key = f"derived:{len(self.loader.volumes)}:{id(volume)}"
        base = next((self.loader.entries.get(k) for k, v in self.loader.volumes.items()
                     if v is source), None)
        nz, ny, nx = volume.shape[:3]
        fields = dict(key=key, kind="derived", paths=[], modality=volume.modality,
                      description=volume.description, series_uid="", series_number=None,
                      n_images=nz, n_frames=0, rows=ny, columns=nx, notes=["made in MedViewer"],
                      headers=[])
        entry = dataclasses.replace(base, **fields) if base is not None else SeriesEntry(**fields)
        self.loader.volumes[key] = volume
        self.loader.entries[key] = entry
        self.series_browser.add_catalogue(Catalogue(series=[entry]))
        self.series_browser.set_thumbnail(key, thumbnail_array(volume))
        self.session.add_volume(volume, activate=False)
        return key

    def request_series(self, entry) -> None:
        """Show another series (the series browser), once unsaved strokes are dealt with."""
        vol = self.loader.volumes.get(entry.key)
        if vol is not None and vol is self.session.active:
            return
        if self.confirm_leave("switching series", lambda: self.loader.load_entry(entry)):
            self.loader.load_entry(entry)

    # ------------------------------------------------------------------ opening
    def open_paths(self, paths: List[str]) -> None:
        """Open files/folders (the first series becomes active), once unsaved strokes on the
        active image are saved or discarded."""
        if not paths:
            return
        if self.confirm_leave("opening other images", lambda: self._open_paths(paths)):
            self._open_paths(paths)

    def _open_paths(self, paths: List[str]) -> None:
        st.add_recent(self.settings, paths)
        st.set_last_folder(self.settings, paths[0])
        self._refresh_recent()
        self.loader.open_paths([str(p) for p in paths])

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open image files", st.last_folder(self.settings),
                                                "Images (*.dcm *.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.mgz *);;All files (*)")
        self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", st.last_folder(self.settings))
        if folder:
            self.open_paths([folder])

    def open_dicomdir_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open DICOMDIR", st.last_folder(self.settings),
                                              "DICOMDIR (DICOMDIR dicomdir *.dir);;All files (*)")
        if path:
            self.open_paths([path])

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in st.recent_paths(self.settings):
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda checked=False, path=p: self.open_paths([path]))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))

    def dragEnterEvent(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            ev.acceptProposedAction()
            self.open_paths(paths)

    # ------------------------------------------------------------------ reacting
    def _on_loaded(self, volume: Volume) -> None:
        key = next((k for k, v in self.loader.volumes.items() if v is volume), None)
        if key:
            self.series_browser.mark_active(key)
            self.series_browser.update_loaded(key, volume.modality, volume.shape[0])
        self.tri.views["axial"].setFocus()

    def _on_active_changed(self, volume: Optional[Volume]) -> None:
        self._auto_layout(volume)
        key = next((k for k, v in self.loader.volumes.items() if v is volume), None)
        if key is not None:  # however it became active (the browser, a feature)
            self.series_browser.mark_active(key)
        self.actions_by_name["resample"].setEnabled(volume is not None and volume.geometry.is_uneven)
        warnings = list(volume.warnings) if volume is not None else []
        self.banner.setText("⚠ " + "   ⚠ ".join(warnings) if warnings else "")
        self.banner.setVisible(bool(warnings))
        self._set_title()

    def _set_title(self) -> None:
        volume = self.session.active
        title = "MedViewer"
        if volume is not None:
            desc = shown_description(volume, self.privacy.hidden)
            title += f" — {volume.modality} {desc}".rstrip()
        self.setWindowTitle(title)

    def _on_privacy_changed(self, hidden: bool) -> None:
        """Show or hide patient details everywhere the viewer shows them."""
        for widget in (self.series_browser, self.tag_browser, self.tri.info,
                       *self.tri.views.values()):
            widget.show_patient_details(not hidden)
        self._set_title()
        act = self.actions_by_name.get("hide_patient")
        if act is not None:
            act.setChecked(self.privacy.toggled)

    def toggle_patient_details(self) -> None:
        """View > Hide patient details (persisted)."""
        self.privacy.set_hidden(not self.privacy.toggled)
        self.statusBar().showMessage("Patient details hidden" if self.privacy.toggled
                                     else "Patient details shown", 4000)

    def apply_overlay_fields(self) -> None:
        """View > Corner overlays: the checked texts show in every slice view (persisted)."""
        fields = [k for k in corner_text.FIELDS
                  if self.actions_by_name[f"overlay_{k}"].isChecked()]
        st.set_overlay_fields(self.settings, fields)
        for view in self.tri.views.values():
            view.set_overlay_fields(fields)

    def set_wheel_reversed(self, on: bool) -> None:
        """View > Reverse mouse wheel (persisted): wheel towards the user = previous image."""
        self.settings.setValue(st.REVERSE_WHEEL, bool(on))
        for view in self.tri.views.values():
            view.wheel_reversed = bool(on)
        act = self.actions_by_name.get("reverse_wheel")
        if act is not None and act.isChecked() != bool(on):
            act.setChecked(bool(on))

    def _on_cursor_changed(self, index_zyx) -> None:
        view = self.tri.views["axial"]
        if view.current is not None:
            row, col = view.reslicer.to_display("axial", index_zyx)
            self.readout.setText("Cursor: " + view.readout_at(view.display_to_view(row, col)))

    def _on_wl_drag(self, dx: float, dy: float) -> None:
        if self.session.active is None or self.session.active.is_rgb:
            return
        c, w = self.session.window
        step = max(w, 1.0) * WL_SENSITIVITY
        self.session.set_window(c + dy * step, max(1.0, w + dx * step), "Custom")

    def show_notice(self, text: str) -> None:
        """A line in the banner above the views (e.g. strokes recovered after a crash)."""
        old = self.banner.text() if self.banner.isVisible() else ""
        self.banner.setText(f"{old}   ℹ {text}" if old else f"ℹ {text}")
        self.banner.setVisible(True)

    def withdraw_notice(self, text: str) -> None:
        """Take a line that :meth:`show_notice` put in the banner out again (it no longer
        holds, e.g. the workspace can be written again)."""
        old = self.banner.text()
        new = old.replace(f"   \u2139 {text}", "").replace(f"\u2139 {text}", "").strip()
        if new != old:
            self.banner.setText(new)
            self.banner.setVisible(bool(new))

    def show_error(self, title: str, message: str) -> None:
        """Non-modal error dialog (never blocks loading or the app)."""
        self.errors.append(f"{title}: {message}")
        self.statusBar().showMessage(f"{title}: {message.splitlines()[0] if message else ''}", 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # ------------------------------------------------------------------ commands
    def _auto_layout(self, volume: Optional[Volume]) -> None:
        """A lone 2D image gets a single view; the next 3D volume gets the user's layout back.
        Neither switch is saved as the user's preference."""
        if volume is None or self.tri.views["axial"].reslicer is None:
            return
        native = self.tri.views["axial"].reslicer.native_plane()
        if volume.shape[0] == 1 and self.tri.layout_name != native:
            # a lone 2D image only has its own plane: any other view would be a black cut
            self.set_layout(native, remember=False)
            self._auto_single = True
        elif volume.shape[0] > 1 and self._auto_single:
            self._auto_single = False
            self.set_layout(str(self.settings.value("view/layout", "tri") or "tri"), remember=False)

    def set_layout(self, name: str, remember: bool = True) -> None:
        self.tri.set_layout(name)
        act = self.actions_by_name.get(f"layout_{name}")
        if act is not None:
            act.setChecked(True)
        if remember:
            self._auto_single = False
            self.settings.setValue("view/layout", name)

    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}")
        self.tri.set_tool(name)
        for feature in self.features.values():
            hook = getattr(feature, "on_tool_changed", None)
            if hook is not None:
                hook(name)
        self.actions_by_name[f"tool_{name}"].setChecked(True)
        self.statusBar().showMessage(f"Tool: {TOOLS[name][0]} — {TOOLS[name][2]}", 5000)

    def resample_active(self) -> None:
        vol = self.session.active
        if vol is None or not vol.geometry.is_uneven:
            return

        def work(reporter):
            from medviewer.core.resample import resample_even

            return resample_even(vol)

        self.progress.show_progress("Resampling…", 0, 0)
        self.bridge.submit(work, "resample",
                           on_done=lambda new: (self.progress.setVisible(False),
                                                self.session.replace_volume(vol, new)),
                           on_error=lambda msg: (self.progress.setVisible(False),
                                                 self.show_error("Could not resample", msg)))

    def save_screenshot(self, path: str, anonymise: Optional[bool] = None):
        """The window as an image file; patient details hidden in it when ``anonymise``
        (default: the File > Anonymise screenshots setting, on unless turned off)."""
        from .screenshot import save_window_image

        return save_window_image(self, path, anonymise)

    def save_screenshot_dialog(self) -> None:
        from .screenshot import screenshot_dialog

        screenshot_dialog(self)

    def show_shortcuts(self) -> None:
        dlg = ShortcutsDialog(self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()

    def show_about(self) -> None:
        QMessageBox.about(self, "About MedViewer", "MedViewer — tri-planar DICOM/NIfTI viewer.\n"
                          "Not for diagnostic use.")

    # ------------------------------------------------------------------ settings
    _auto_single = False  # the current single view was chosen for a 2D image, not by the user

    def _restore_settings(self) -> None:
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        self._fit_to_screen(restored=geo is not None)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state, DOCK_STATE_VERSION)  # other versions: defaults
        self.set_wheel_reversed(st.reverse_wheel(self.settings))
        self.apply_overlay_fields()
        layout = str(self.settings.value("view/layout", "tri") or "tri")
        self.set_layout(layout if layout in LAYOUTS else "tri")
        self._refresh_recent()

    def _fit_to_screen(self, restored: bool) -> None:
        """A sensible size on first start, and never a tiny or off-screen restored window."""
        screen = self.screen() or QApplication.primaryScreen()
        avail = screen.availableGeometry() if screen is not None else None
        if avail is None or avail.width() < 200:
            self.resize(1280, 860)
            return
        too_small = self.width() < 900 or self.height() < 600
        too_big = self.width() > avail.width() or self.height() > avail.height()
        if not restored or too_small or too_big:
            w = min(max(1280, int(avail.width() * 0.85)), avail.width())
            h = min(max(860, int(avail.height() * 0.85)), avail.height())
            self.resize(w, h)
            self.move(avail.x() + (avail.width() - w) // 2, avail.y() + (avail.height() - h) // 2)

    def showEvent(self, ev):
        super().showEvent(ev)
        QTimer.singleShot(0, self._tab_tooltips)

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        QTimer.singleShot(0, self.readout.refit)  # once the status bar has its new width

    def _close_after_confirm(self) -> None:
        self._close_confirmed = True
        self.close()

    def closeEvent(self, ev):
        if not self._close_confirmed and not self.confirm_leave(
                "closing the window", self._close_after_confirm, closing=True):
            ev.ignore()  # a question is open; its answer closes the window (or not)
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(DOCK_STATE_VERSION))
        self.settings.sync()
        self.loader.cancel()
        self.tag_browser.stop()
        for feature in reversed(list(self.features.values())):
            feature.shutdown()
        self.bridge.cancel_all()
        self.tri.slab_bridge.cancel_all()
        super().closeEvent(ev)
