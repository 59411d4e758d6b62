"""SOP class classification: which DICOM objects are images, and human names of the rest."""
from __future__ import annotations

from typing import Optional

_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1."

# SOP classes that are not images to view as a volume (exact UIDs first, then prefixes)
NON_IMAGE_SOP = {
    _SOP_PREFIX + "481.2": "RT Dose",
    _SOP_PREFIX + "481.3": "RT Structure Set",
    _SOP_PREFIX + "481.4": "RT Treatment Record",
    _SOP_PREFIX + "481.5": "RT Plan",
    _SOP_PREFIX + "481.6": "RT Treatment Record",
    _SOP_PREFIX + "481.7": "RT Treatment Summary",
    _SOP_PREFIX + "481.8": "RT Ion Plan",
    _SOP_PREFIX + "481.9": "RT Treatment Record",
    _SOP_PREFIX + "88.59": "Key Object Selection",
    _SOP_PREFIX + "66": "Raw Data",
    _SOP_PREFIX + "66.1": "Spatial Registration",
    _SOP_PREFIX + "66.2": "Spatial Fiducials",
    _SOP_PREFIX + "66.3": "Deformable Registration",
    _SOP_PREFIX + "66.4": "Segmentation",
    _SOP_PREFIX + "66.5": "Surface Segmentation",
    _SOP_PREFIX + "66.6": "Tractography Results",
    _SOP_PREFIX + "66.7": "Segmentation",  # label-map segmentation
    _SOP_PREFIX + "104.1": "Encapsulated PDF",
    _SOP_PREFIX + "104.2": "Encapsulated CDA",
    _SOP_PREFIX + "104.3": "Encapsulated STL",
    _SOP_PREFIX + "67": "Real World Value Mapping",
    "1.2.840.10008.1.3.10": "DICOMDIR",
}
NON_IMAGE_PREFIXES = [
    (_SOP_PREFIX + "481.", "RT object"),  # except 481.1 RT Image, handled below
    (_SOP_PREFIX + "88.", "Structured Report"),
    (_SOP_PREFIX + "9.", "Waveform"),
    (_SOP_PREFIX + "11.", "Presentation State"),
    (_SOP_PREFIX + "104.", "Encapsulated document"),
    (_SOP_PREFIX + "68.", "Surface"),
    ("1.2.840.10008.5.1.4.38.", "Hanging Protocol"),
    ("1.2.840.10008.5.1.4.39.", "Color Palette"),
]
NON_IMAGE_MODALITIES = {
    "RTSTRUCT": "RT Structure Set", "RTPLAN": "RT Plan", "RTDOSE": "RT Dose",
    "RTRECORD": "RT Treatment Record", "SR": "Structured Report", "KO": "Key Object Selection",
    "PR": "Presentation State", "SEG": "Segmentation", "REG": "Spatial Registration",
    "FID": "Spatial Fiducials", "ECG": "Waveform", "HD": "Waveform", "AU": "Waveform",
    "DOC": "Encapsulated document", "RWV": "Real World Value Mapping",
}


def non_image_kind(sop_class_uid: str, modality: str = "") -> Optional[str]:
    """Human name of a non-image object, or None when the SOP class/modality is an image."""
    uid = str(sop_class_uid or "")
    if uid in NON_IMAGE_SOP:
        return NON_IMAGE_SOP[uid]
    if uid == _SOP_PREFIX + "481.1":  # RT Image is an image
        return None
    for prefix, name in NON_IMAGE_PREFIXES:
        if uid.startswith(prefix):
            return name
    if not uid or not uid.startswith(_SOP_PREFIX):
        return NON_IMAGE_MODALITIES.get(str(modality or "").upper())
    return None
