"""PacsFeature: the PACS dock (tabbed with the series browser), following the "hide patient
details" toggle, opening what a retrieve brought like any local folder, and sending the
label map that the annotation feature shares ("labels") back as a DICOM SEG."""
from __future__ import annotations

from ..features import DockSpec, FeatureHost
from .panel import PacsPanel


class PacsFeature:
    name = "pacs"

    def __init__(self, host: FeatureHost):
        self.host = host
        privacy = host.privacy
        self.labels = host.get("labels", None)  # the annotation feature's label controller
        self.panel = PacsPanel(host.bridge, host.settings, open_paths=host.open_paths,
                               hidden_fn=(lambda: privacy.hidden) if privacy is not None
                               else (lambda: False), labels_fn=self.current_labels,
                               parent=host.window)
        host.registry.dock(DockSpec("pacsDock", "PACS", self.panel, area="left",
                                    tab_with="seriesDock"))
        host.registry.raise_dock("seriesDock")
        if privacy is not None:
            privacy.sig_changed.connect(self.panel.refresh_privacy)
        self.panel.sig_status.connect(lambda text: host.status(text))
        self.panel.sig_error.connect(host.show_error)

    def current_labels(self):
        """(labels, table dict, volume) of the label map on the active image, or None."""
        ctl = self.labels
        if ctl is None or ctl.labelmap is None or ctl.volume is None:
            return None
        lm = ctl.labelmap
        return lm.snapshot(), lm.table.to_dict(), ctl.volume

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        self.panel.cancel()
