"""PacsFeature: the PACS dock (tabbed with the series browser), following the "hide patient
details" toggle and opening what a retrieve brought like any local folder."""
from __future__ import annotations

from ..features import DockSpec, FeatureHost
from .panel import PacsPanel


class PacsFeature:
    name = "pacs"

    def __init__(self, host: FeatureHost):
        self.host = host
        privacy = host.privacy
        self.panel = PacsPanel(host.bridge, host.settings, open_paths=host.open_paths,
                               hidden_fn=(lambda: privacy.hidden) if privacy is not None
                               else (lambda: False), parent=host.window)
        host.registry.dock(DockSpec("pacsDock", "PACS", self.panel, area="left",
                                    tab_with="seriesDock"))
        host.registry.raise_dock("seriesDock")
        if privacy is not None:
            privacy.sig_changed.connect(self.panel.refresh_privacy)
        self.panel.sig_status.connect(lambda text: host.status(text))
        self.panel.sig_error.connect(host.show_error)

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        self.panel.cancel()
