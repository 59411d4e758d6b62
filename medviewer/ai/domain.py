"""A model's domain (what images it was trained on) and whether an image fits it; no torch.

A card may declare ``domain``: DICOM ``modalities``, ``image_type`` (``"volume"``: slices of a
cross-sectional scan; ``"projection"``: a one-image radiograph), ``body_region`` (shown, and
compared with the series' BodyPartExamined as a note only), ``dims`` (2: each slice or image
on its own; 3: a whole volume), an in-plane pixel ``spacing_mm`` range ``[lo, hi]`` and
``min_slices``. :func:`check_domain` is a pure function of a card and :class:`ImageFacts`
(metadata only, no pixels): ``fits`` False comes with a one-line ``reason``. A card without a
domain fits everything (with a note saying so). The card's ``ood`` block (reference statistics
of the training data for the out-of-distribution score) is validated here too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from medviewer.ai.architectures import ModelError

__all__ = ["ImageFacts", "DomainFit", "check_domain", "validate_domain", "validate_ood",
           "validate_limits", "PROJECTION_MODALITIES", "CROSS_SECTIONAL_MODALITIES",
           "IMAGE_TYPES"]

IMAGE_TYPES = ("volume", "projection")
# a model for any kind of 2D image (the promptable model): the image type is not checked
ANY_IMAGE_TYPE = "any"
# DICOM modalities of one-image projection radiographs (and their 2D relatives)
PROJECTION_MODALITIES = ("CR", "DX", "RG", "MG", "RF", "XA", "PX", "IO")
# modalities whose images are slices of a volume, even when only one slice is at hand
CROSS_SECTIONAL_MODALITIES = ("CT", "MR", "PT", "NM", "US", "OT_VOLUME")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageFacts:
    """What :func:`check_domain` needs to know about an image (metadata, no pixels)."""

    modality: str = ""  # DICOM code; "" when the file format carries none
    n_slices: int = 1
    spacing_yx: Optional[tuple] = None  # in-plane (row, col) mm; None when unknown
    body_part: str = ""  # BodyPartExamined, when the series has it
    is_rgb: bool = False

    @property
    def image_type(self) -> str:
        """"projection" or "volume" (a CT/MR slice is a volume's slice even when alone)."""
        mod = self.modality.upper()
        if mod in PROJECTION_MODALITIES:
            return "projection"
        if mod in CROSS_SECTIONAL_MODALITIES or self.n_slices > 1:
            return "volume"
        return "projection"  # one image of unknown kind (PNG, JPEG): a 2D picture

    @classmethod
    def from_volume(cls, volume) -> "ImageFacts":
        """Facts of a core Volume (spacing is trusted unless the reader marked it unknown)."""
        meta = getattr(volume, "meta", {}) or {}
        sx, sy, _ = (float(v) for v in volume.geometry.spacing)
        known = not meta.get("spacing_unknown") and volume.shape[0] > 0
        return cls(modality=str(volume.modality or "").upper(), n_slices=int(volume.shape[0]),
                   spacing_yx=(sy, sx) if known else None,
                   body_part=str(meta.get("BodyPartExamined", "") or ""),
                   is_rgb=bool(volume.is_rgb))

    @classmethod
    def from_image_file(cls, array) -> "ImageFacts":
        """Facts of a plain image file (PNG/JPEG...): no modality, no spacing, one image."""
        return cls(modality="", n_slices=1, spacing_yx=None,
                   is_rgb=getattr(array, "ndim", 2) == 3)


@dataclass(frozen=True)
class DomainFit:
    fits: bool
    reason: str = ""  # one line when it does not fit
    notes: tuple = field(default_factory=tuple)  # cautions that do not block

    def to_dict(self) -> dict:
        return {"fits": self.fits, "reason": self.reason, "notes": list(self.notes)}


def _kind_text(image_type: str) -> str:
    return "a projection radiograph" if image_type == "projection" else "slices of a volume"


def check_domain(card, facts: ImageFacts) -> DomainFit:
    """Whether an image with ``facts`` is what ``card``'s model was trained on."""
    dom = getattr(card, "domain", None) or {}
    if not dom:
        return DomainFit(True, notes=("the model card declares no domain: not checked",))
    notes = []
    mods = [m.upper() for m in dom.get("modalities", [])]
    kind = facts.image_type
    want_kind = dom.get("image_type")
    if want_kind == ANY_IMAGE_TYPE:
        want_kind = None
    mod = facts.modality.upper()
    if mods and mod and mod not in mods:
        return DomainFit(False, f"trained on {'/'.join(mods)} {_kind_text(want_kind or kind)}; "
                                f"this image is {mod} ({_kind_text(kind)})")
    if want_kind and kind != want_kind:
        return DomainFit(False, f"trained on {_kind_text(want_kind)}; this image is "
                                f"{_kind_text(kind)}")
    if mods and not mod:
        notes.append(f"modality unknown (the file does not say); trained on {'/'.join(mods)}")
    if int(dom.get("dims", 2)) == 3 and facts.n_slices < int(dom.get("min_slices", 2)):
        return DomainFit(False, f"a 3D model needs at least {dom.get('min_slices', 2)} slices; "
                                f"this image has {facts.n_slices}")
    if facts.n_slices < int(dom.get("min_slices", 1)):
        return DomainFit(False, f"needs at least {dom['min_slices']} slices; this image has "
                                f"{facts.n_slices}")
    rng = dom.get("spacing_mm")
    if rng:
        lo, hi = (float(v) for v in rng)
        if facts.spacing_yx is None:
            notes.append("pixel spacing unknown: not checked")
        else:
            bad = [s for s in facts.spacing_yx if not lo <= s <= hi]
            if bad:
                got = " x ".join(f"{s:.3g}" for s in facts.spacing_yx)
                return DomainFit(False, f"pixel spacing {got} mm is outside the trained range "
                                        f"{lo:g}-{hi:g} mm")
    if facts.is_rgb and dom.get("grey_only", True):
        notes.append("a colour image: it is converted to grey")
    region = str(dom.get("body_region", ""))
    part = facts.body_part.strip()
    if region and part and part.lower() not in region.lower():
        notes.append(f"the series says {part.upper()}; the model was trained on {region}")
    return DomainFit(True, notes=tuple(notes))


# ---------------------------------------------------------------------------- validation
def _plain_file(value: Any, what: str) -> str:
    if (not isinstance(value, str) or Path(value).name != value or value.startswith(".")
            or not value.endswith(".safetensors")):
        raise ModelError(f"{what} must be a plain .safetensors file name, got {value!r}")
    return value


def validate_domain(value: Any) -> dict:
    """Check a card's ``domain`` object; return a normalised copy ({} when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError("domain must be an object")
    out = dict(value)
    mods = value.get("modalities", [])
    if not isinstance(mods, list) or not all(isinstance(m, str) and m.strip() for m in mods):
        raise ModelError("domain.modalities must be a list of DICOM modality codes")
    out["modalities"] = [m.strip().upper() for m in mods]
    if value.get("image_type") not in IMAGE_TYPES + (ANY_IMAGE_TYPE,):
        raise ModelError(f"domain.image_type must be one of "
                         f"{list(IMAGE_TYPES + (ANY_IMAGE_TYPE,))}, "
                         f"got {value.get('image_type')!r}")
    dims = value.get("dims", 2)
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ModelError(f"domain.dims must be 2 or 3, got {dims!r}")
    rng = value.get("spacing_mm")
    if rng is not None:
        ok = (isinstance(rng, list) and len(rng) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in rng)
            and rng[0] <= rng[1])
        if not ok:
            raise ModelError(f"domain.spacing_mm must be [lo, hi] in mm, got {rng!r}")
    n = value.get("min_slices", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ModelError(f"domain.min_slices must be a positive integer, got {n!r}")
    if not isinstance(value.get("body_region", ""), str):
        raise ModelError("domain.body_region must be text")
    return out


def validate_limits(value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
        raise ModelError("limits must be a list of sentences")
    return list(value)


def validate_ood(value: Any) -> dict:
    """Check a card's ``ood`` object (reference statistics and calibration)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError("ood must be an object")
    out = dict(value)
    hist = value.get("histogram")
    if hist is not None:
        ref = hist.get("reference") if isinstance(hist, dict) else None
        bins = hist.get("bins") if isinstance(hist, dict) else None
        if (not isinstance(bins, int) or isinstance(bins, bool) or bins < 2
                or not isinstance(ref, list) or len(ref) != bins
                or not all(isinstance(v, (int, float)) and v >= 0 for v in ref)):
            raise ModelError("ood.histogram must have 'bins' and a 'reference' of that length")
    feats = value.get("features")
    if feats is not None:
        if not isinstance(feats, dict):
            raise ModelError("ood.features must be an object")
        _plain_file(feats.get("file"), "ood.features.file")
        if not isinstance(feats.get("sha256"), str) or not _SHA_RE.match(feats["sha256"]):
            raise ModelError("ood.features.sha256 must be 64 lower-case hex digits")
    scale = value.get("scale", {})
    if not isinstance(scale, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for v in scale.values()):
        raise ModelError("ood.scale must map component names to positive numbers")
    for key in ("histogram", "features"):
        if value.get(key) is not None and key not in scale:
            raise ModelError(f"ood.scale.{key} is missing (the calibrated 99th percentile)")
    thr = value.get("threshold", 1.0)
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or thr <= 0:
        raise ModelError(f"ood.threshold must be a positive number, got {thr!r}")
    return out
