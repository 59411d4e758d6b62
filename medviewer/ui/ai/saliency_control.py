"""SaliencyControl: the saliency part of the AiController (method, show/hide, compute on the
AI worker for the last classification). A mixin: it uses the controller's heat overlays,
session, last classification and job submission."""
from __future__ import annotations

from medviewer.services.ai_runs import SALIENCY_METHODS, saliency_map, slice_image, volume_window

from .overlays import HeatMap


class SaliencyControl:
    def set_saliency_method(self, method: str) -> None:
        if method not in dict(SALIENCY_METHODS):
            raise ValueError(f"unknown saliency method {method!r}")
        changed = method != self.saliency_method
        self.saliency_method = method
        if changed and self.want_saliency:
            self.compute_saliency()

    def set_show_saliency(self, on: bool) -> None:
        self.want_saliency = bool(on)
        if not on:
            if self.heat.shown == "saliency":
                self.heat.show(None)
            return
        sal = self.heat.maps.get("saliency")
        if sal is not None and sal.title == self.saliency_method and self._class_is_current():
            self.heat.show("saliency")
        else:
            self.compute_saliency()

    def _class_is_current(self) -> bool:
        return self.last_class is not None and self.last_class_volume is self.session.active

    def compute_saliency(self):
        """Saliency of the last classification (its slice, its predicted class)."""
        if not self._class_is_current():
            self.sig_status.emit("Classify the image first (Run on slice)")
            return None
        run, vol, method = self.last_class, self.last_class_volume, self.saliency_method
        card = next((c for c in self.cards if c.ref == run.ref), None)
        if card is None:
            return None
        image = slice_image(vol, run.z)
        target = list(card.labels).index(run.label)

        window = volume_window(vol)

        def work(ctx):
            return saliency_map(ctx, card, image, vol.invert, target, method, window)

        def done(heat2d):
            self.heat.set_map(HeatMap.on_slice(vol, run.z, heat2d, "saliency", method),
                              show=self.want_saliency)
            self.sig_status.emit(f"{dict(SALIENCY_METHODS)[method]} for '{run.label}'")

        return self._submit(work, "ai-saliency", done, "Saliency failed")

