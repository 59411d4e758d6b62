"""View3DFeature: the 3D pane in the tri-planar layout's fourth cell, the View menu entries
that switch that cell between the info text and the 3D view (4) and reset the 3D camera
(Ctrl+4), and the label-surface mesher behind it. The choice is kept in the settings."""
from __future__ import annotations

from ..features import FeatureHost
from .meshing import SurfaceMesher
from .pane import View3DPane

SETTING = "view/fourth_pane"  # "info" or "3d"


class View3DFeature:
    name = "view3d"

    def __init__(self, host: FeatureHost):
        self.host = host
        self.mesher = SurfaceMesher(host.session, host.bridge, host.window)
        self.pane = View3DPane(host.session, host.bridge, self.mesher, host.window)
        host.tri.add_fourth("3d", self.pane)
        host.registry.actions("view", [
            None,
            ("view3d_toggle", "&3D view in the fourth pane", self.toggle,
             "Switch the fourth tri-planar pane between the image information and the 3D view "
             "(label surfaces, volume rendering, crosshair planes)"),
            ("view3d_reset_camera", "Reset 3D &camera", self.pane.reset_camera,
             "Front view of the whole image in the 3D pane"),
        ], checkable=("view3d_toggle",))

    def start(self) -> None:
        self.host.tri.sig_fourth_changed.connect(self._on_fourth_changed)
        shown = str(self.host.settings.value(SETTING, "info") or "info") == "3d"
        if shown:
            self.host.tri.show_fourth("3d")
        self._on_fourth_changed(self.host.tri.fourth_name)

    def toggle(self) -> None:
        self.show_3d(self.host.tri.fourth_name != "3d")

    def show_3d(self, on: bool) -> None:
        """The 3D view (True) or the information text (False) in the fourth pane."""
        self.host.tri.show_fourth("3d" if on else "info")
        self.host.settings.setValue(SETTING, "3d" if on else "info")

    def _on_fourth_changed(self, name: str) -> None:
        act = self.host.actions.get("view3d_toggle")
        if act is not None and act.isChecked() != (name == "3d"):
            act.setChecked(name == "3d")

    def shutdown(self) -> None:
        self.mesher.set_enabled(False)
