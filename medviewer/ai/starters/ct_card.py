"""The CT organ segmentation starter's card texts: description, domain, limits, README.md."""
from __future__ import annotations

from medviewer.ai.starters.card_sections import (domain_section, limits_section,
                                                    ood_section)

DESCRIPTION = ("2D axial CT segmentation of six large organs (liver, spleen, kidneys, stomach, "
               "lung bases), trained on 39 upper-abdominal slices of two TotalSegmentator "
               "example CTs. For abdominal CT only. Demonstration model; not for clinical use.")
DOMAIN = {"modalities": ["CT"], "image_type": "volume",
          "body_region": "abdomen (upper abdomen and lung bases), axial slices", "dims": 2,
          "spacing_mm": [0.5, 3.5], "min_slices": 1}
LIMITS = [
    "Trained on axial slabs of two upper-abdominal CTs only (39 slices, 1 and 3 mm pixels); "
    "its labels are another model's output (TotalSegmentator), not manual outlines.",
    "On chest CT it paints liver over the heart and over chest-wall and shoulder muscles, "
    "and spleen and 'lung' along the chest wall: outside the upper abdomen its output is not "
    "meaningful.",
    "Not for radiographs, MR, PET or ultrasound, nor for coronal or sagittal slices.",
    "2D slice by slice: no 3D consistency; a mirrored image swaps left and right kidney.",
]


def _fmt(v) -> str:
    return "n/a (not in the held-out slices)" if v is None else f"{v:.4f}"


def readme_text(card: dict) -> str:
    t, m, p = card["training"], card["metrics"], card["architecture"]["params"]
    rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in m["dice"].items())
    held = ", ".join(f"case {k}: {v}" for k, v in m["held_out_slices"].items())
    hashes = "\n".join(f"- `{k}`: `{v}`" for k, v in t["data_sha256"].items())
    labels = ", ".join(f"{i} {n}" for i, n in enumerate(card["labels"]))
    limits = limits_section(card, LIMITS)
    return f"""# {card['name']} {card['version']} — 2D CT organ segmentation (demonstration)

**Not for clinical use.** A starter model that lets MedViewer show segmentation, uncertainty
and label correction on CT. It was trained on **two tiny example CTs** (39 axial slices in all)
whose labels are **the output of another model (TotalSegmentator), not manual annotations**.
Expect rough outlines and failures on anything unlike those two scans.

## What it does
Input: axial CT slices in Hounsfield units. Preprocessing (card `input`): CT window
[-1000, 500] HU (center {card['input']['intensity']['center']}, width
{card['input']['intensity']['width']}) scaled to [0, 1], in-plane resampling to
{card['input']['spacing']} mm, sliding-window inference with {card['input']['patch']} patches
(MONAI `sliding_window_inference`), softmax probabilities resampled back to the slice grid.
Output labels: {labels}. `lung` merges TotalSegmentator's five lobes (only the lung bases are
in the training data).

Orientation: trained on arrays as a usual axial DICOM series gives them (x towards the
patient's left, y posterior) and, by augmentation, on the same images turned 180 degrees (the
array orientation of a NIfTI file in RAS order read without reorientation). Mirrored images
would swap left and right kidney.

Architecture: MONAI `UNet` (2D, channels {p['channels']}, strides {p['strides']},
{p['num_res_units']} residual units, instance norm, dropout {p['dropout']}: contains dropout
layers, so MC-dropout uncertainty works).

## Data and licence
TotalSegmentator reference files (Wasserthal et al., Radiology: AI 2023), Apache-2.0:
{t['data']}. sha256 (a folder: sha256 of its sorted `name:sha256` lines):
{hashes}

The weights are released under Apache-2.0.

## Metrics: Dice per organ on held-out slices
Held-out contiguous slice blocks ({held}) were never trained on and not used for any choice;
the last epoch's weights are the model. {m['dice_method']}.

| organ | Dice |
|---|---|
{rows}
| **mean** | **{m['mean_dice']:.4f}** |

These numbers measure agreement with TotalSegmentator on a few neighbouring slices of the same
two scans: they say nothing about accuracy on other patients.

## Training (reproducible on CPU)
```
{t['command']}
```
seed {t['seed']}, {t['epochs']} epochs over {t['train_slices']} slices, batch {t['batch_size']},
{t['optimizer']}, max LR {t['lr']}, {t['loss']}; augmentation: {t['augmentation']}. Wall time
{t['wall_time_s']:.0f} s on {t['device']} (torch {t['torch']}, MONAI {t['monai']}); seeded with
deterministic algorithms.

## What it was trained on (its domain)
{domain_section(card, DOMAIN)}

## Where it fails
{limits}

## Out-of-distribution score
{ood_section(card)}
"""

