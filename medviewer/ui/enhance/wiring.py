"""EnhanceFeature: Tools > Enhance image… opens the enhancement dialog on the active series;
what Apply makes is added as a derived series (listed under its study in the series browser,
the original kept)."""
from __future__ import annotations

from typing import Optional

from medviewer.core.volume import Volume

from ..features import FeatureHost
from ..triplanar import shown_description
from .dialog import EnhanceDialog


class EnhanceFeature:
    name = "enhance"

    def __init__(self, host: FeatureHost):
        self.host = host
        self.dialog: Optional[EnhanceDialog] = None
        self.added: list = []  # the derived series made here, oldest first
        host.registry.actions("tools", [
            None,
            ("enhance_image", "&Enhance image…", self.open_dialog,
             "Denoise or sharpen the active series: preview on the current slice, apply as "
             "a new series"),
        ])

    def start(self) -> None:
        pass

    def _describe(self, volume: Volume) -> str:
        privacy = self.host.privacy
        return shown_description(volume, privacy is not None and privacy.hidden)

    def open_dialog(self) -> Optional[EnhanceDialog]:
        if self.host.session.active is None:
            self.host.show_error("Enhance image", "Open a series first: the filter is "
                                 "previewed on its current slice and applied to it.")
            return None
        if self.dialog is not None:  # open: bring it to the front
            self.dialog.raise_()
            self.dialog.activateWindow()
            return self.dialog
        dlg = EnhanceDialog(self.host.session, self.host.bridge, self._describe,
                            self.host.window)
        dlg.sig_applied.connect(self._on_applied)
        dlg.finished.connect(lambda _result: self._closed(dlg))
        self.dialog = dlg
        dlg.show()
        return dlg

    def _closed(self, dlg: EnhanceDialog) -> None:
        if self.dialog is dlg:
            self.dialog = None
        dlg.deleteLater()

    def _on_applied(self, volume: Volume, source: Volume) -> None:
        if not any(v is source for v in self.host.session.volumes):
            return  # the source series was closed meanwhile
        if self.host.add_series is not None:
            self.host.add_series(volume, source)
        else:
            self.host.session.add_volume(volume, activate=False)
        self.added.append(volume)
        self.host.status(f"Enhanced series added: {volume.description}")

    def shutdown(self) -> None:
        if self.dialog is not None:  # cancels an apply that is running
            self.dialog.reject()
