"""Which models fit an image, and how far a prediction's input lies from a model's training data:
the domain check (card + image metadata, no torch) and the out-of-distribution score that
:mod:`medviewer.services.ai_runs` computes with every prediction (app and CLI alike)."""
from __future__ import annotations

from typing import Optional

from medviewer.ai.domain import DomainFit, ImageFacts, check_domain

__all__ = ["DomainFit", "ImageFacts", "DomainMismatch", "check_domain", "model_fit", "image_file_fit",
           "fits_by_ref", "require_fit", "ood_of_image", "ood_of_volume", "card_limits",
           "OOD_MESSAGE"]

OOD_MESSAGE = "outside what this model was trained on"


class DomainMismatch(ValueError):
    """A model was asked to run on an image outside its declared domain (without force)."""

    def __init__(self, card, fit: DomainFit):
        super().__init__(f"{card.ref} does not fit this image: {fit.reason}")
        self.card, self.fit = card, fit

    def __reduce__(self):  # crosses from the inference process with its card and fit
        return type(self), (self.card, self.fit)


def model_fit(card, volume) -> DomainFit:
    """Whether ``volume`` (a core Volume) is what ``card``'s model was trained on."""
    return check_domain(card, ImageFacts.from_volume(volume))


def image_file_fit(card, array) -> DomainFit:
    """The same for a plain image file (PNG, JPEG...: no modality, no spacing)."""
    return check_domain(card, ImageFacts.from_image_file(array))


def fits_by_ref(cards, volume) -> dict:
    """``{card.ref: DomainFit}`` for every card on ``volume`` (None: no image, all fit)."""
    if volume is None:
        return {c.ref: DomainFit(True) for c in cards}
    facts = ImageFacts.from_volume(volume)
    return {c.ref: check_domain(c, facts) for c in cards}


def require_fit(card, fit: DomainFit, force: bool) -> bool:
    """Raise :class:`DomainMismatch` unless the image fits or ``force``; True when the run
    is forced onto an image outside the domain (it is marked so wherever it is stored)."""
    if fit.fits:
        return False
    if not force:
        raise DomainMismatch(card, fit)
    return True


def card_limits(card) -> list:
    """Where the model fails, as its card says (empty when it says nothing)."""
    return list(getattr(card, "limits", []) or [])


# ---------------------------------------------------------------------------- OOD
def ood_of_image(ctx, card, image, invert: bool = False, window: Optional[tuple] = None):
    """OodResult of a 2D image under a classification card, on the job's lane."""
    from medviewer.ai.ood import assess_image

    return assess_image(ctx.model(card), card, image, ctx.device(), invert, window)


def ood_of_volume(ctx, card, volume_array, spacing_zyx, z_range: tuple):
    """OodResult of the slices ``z_range`` of a volume under a segmentation card."""
    from medviewer.ai.ood import assess_volume

    return assess_volume(ctx.model(card), card, volume_array, spacing_zyx, z_range,
                         ctx.device(), check=ctx.check)
