"""LoadController: scan paths and load series on the job bridge, with progress and Cancel.

Never decodes on the GUI thread: :mod:`medviewer.services.studies` scans and loads on the
bridge's pool; results come back as signals."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from medviewer.core.session import Session
from medviewer.core.volume import Volume
from medviewer.services import studies
from medviewer.services.studies import Catalogue, SeriesEntry

from .qt_jobs import Job, QtJobBridge
from .thumbnails import thumbnail_array


class LoadProgress(QWidget):
    """Status-bar progress: a label, a bar and a Cancel button (hidden when idle)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("loadProgress")
        self.label = QLabel(self)
        self.bar = QProgressBar(self)
        self.bar.setObjectName("loadProgressBar")
        self.bar.setMaximumWidth(220)
        self.cancel = QPushButton("Cancel", self)
        self.cancel.setObjectName("loadCancel")
        self.cancel.setToolTip("Stop loading")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.label, self.bar, self.cancel):
            lay.addWidget(w)
        self.setVisible(False)

    def show_progress(self, message: str, done: int, total: int) -> None:
        self.setVisible(True)
        self.label.setText(message[:60])
        self.bar.setRange(0, max(total, 0))
        self.bar.setValue(min(done, total) if total > 0 else 0)


class LoadController(QObject):
    sig_catalogue = Signal(object)  # Catalogue
    sig_loaded = Signal(object)  # Volume, after it became active
    sig_thumbnail = Signal(str, object)  # series key, uint8 array
    sig_error = Signal(str, str)  # title, message
    sig_message = Signal(str)
    sig_finished = Signal()  # a user-started open/load is over (success, error or cancel)

    def __init__(self, session: Session, bridge: QtJobBridge, progress: LoadProgress, parent=None):
        super().__init__(parent)
        self.session, self.bridge, self.progress = session, bridge, progress
        self.volumes: Dict[str, Volume] = {}  # series key -> loaded volume
        self.entries: Dict[str, SeriesEntry] = {}
        self.active_jobs: List[Job] = []
        self.loading_key: Optional[str] = None
        progress.cancel.clicked.connect(self.cancel)

    @property
    def busy(self) -> bool:
        return bool(self.active_jobs)

    def cancel(self) -> None:
        for job in list(self.active_jobs):
            job.cancel()

    def _track(self, job: Job) -> Job:
        self.active_jobs.append(job)
        return job

    def _untrack(self, job: Job) -> None:
        if job in self.active_jobs:
            self.active_jobs.remove(job)
        if not self.active_jobs:
            self.progress.setVisible(False)

    def _on_progress(self, p) -> None:
        self.progress.show_progress(p.message or "Working…", p.done, p.total)

    # ------------------------------------------------------------------ open paths
    def open_paths(self, paths: List[str]) -> None:
        paths = [str(p) for p in paths if str(p)]
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            self.sig_error.emit("Cannot open", "Not found:\n" + "\n".join(missing))
            paths = [p for p in paths if p not in missing]
        if not paths:
            self.sig_finished.emit()
            return

        def work(reporter):
            return studies.scan(paths, reporter)

        self.progress.show_progress("Scanning…", 0, 0)
        holder: List[Job] = []
        job = self.bridge.submit(
            work, "scan", on_progress=self._on_progress,
            on_done=lambda cat: self._on_scanned(holder[0], cat),
            on_error=lambda msg: self._failed(holder[0], "Could not scan the files", msg),
            on_cancelled=lambda: self._cancelled(holder[0]))
        holder.append(self._track(job))

    def _on_scanned(self, job: Job, cat: Catalogue) -> None:
        self._untrack(job)
        for e in cat.series:
            self.entries[e.key] = e
        self.sig_catalogue.emit(cat)
        if not cat.series:
            reasons = "\n".join(f"{Path(s.path).name}: {s.reason}" for s in cat.skipped[:10])
            self.sig_error.emit("No images found", "No loadable image series was found."
                                + (f"\n\nSkipped files:\n{reasons}" if reasons else ""))
            self.sig_finished.emit()
            return
        self.sig_message.emit(f"Found {len(cat.series)} series, {len(cat.non_image)} non-image "
                              f"object(s), {len(cat.skipped)} skipped file(s)")
        first = max(cat.series, key=lambda e: (e.n_frames or e.n_images))
        self.load_entry(first)
        for e in cat.series:
            if e is not first:
                self._request_thumbnail(e)

    # ------------------------------------------------------------------ load one series
    def load_entry(self, entry: SeriesEntry) -> None:
        if entry.key in self.volumes:
            self.session.set_active(self.volumes[entry.key])
            self.sig_loaded.emit(self.volumes[entry.key])
            self.sig_finished.emit()
            return

        def work(reporter):
            vol = studies.load(entry, reporter)
            return vol, thumbnail_array(vol)

        self.loading_key = entry.key
        self.progress.show_progress(f"Loading {entry.description or entry.modality}…", 0, 0)
        holder: List[Job] = []
        job = self.bridge.submit(
            work, "load", on_progress=self._on_progress,
            on_done=lambda res: self._on_loaded(holder[0], entry, *res),
            on_error=lambda msg: self._failed(holder[0], "Could not load the series", msg),
            on_cancelled=lambda: self._cancelled(holder[0]))
        holder.append(self._track(job))

    def _on_loaded(self, job: Job, entry: SeriesEntry, volume: Volume, thumb) -> None:
        self._untrack(job)
        self.loading_key = None
        self.volumes[entry.key] = volume
        self.sig_thumbnail.emit(entry.key, thumb)
        self.session.add_volume(volume)
        self.sig_loaded.emit(volume)
        for w in volume.warnings:
            self.sig_message.emit(f"Warning: {w}")
        self.sig_finished.emit()

    def _failed(self, job: Job, title: str, msg: str) -> None:
        self._untrack(job)
        self.loading_key = None
        self.sig_error.emit(title, msg)
        self.sig_finished.emit()

    def _cancelled(self, job: Job) -> None:
        self._untrack(job)
        self.loading_key = None
        self.sig_message.emit("Cancelled")
        self.sig_finished.emit()

    # ------------------------------------------------------------------ thumbnails
    def _request_thumbnail(self, entry: SeriesEntry) -> None:
        """Decode one image of a not-yet-loaded DICOM series on the pool, for its icon."""
        if entry.kind != "dicom" or not entry.paths:
            return
        i = len(entry.paths) // 2
        headers = [entry.headers[i]] if len(entry.headers) == len(entry.paths) else []
        one = dataclasses.replace(entry, paths=[entry.paths[i]], headers=headers, n_images=1)

        def work(reporter):
            return thumbnail_array(studies.load(one, None))

        self.bridge.submit(work, "thumbnail", on_done=lambda arr: self.sig_thumbnail.emit(entry.key, arr),
                           on_error=lambda msg: None)
