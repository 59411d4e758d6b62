"""The pneumonia-cxr starters' card texts: description, domain, limits, README.md."""
from __future__ import annotations

from medviewer.ai.starters.card_sections import (domain_section, limits_section,
                                                    ood_section)

DESCRIPTION = ("Frontal chest X-ray classifier (normal vs pneumonia), trained on 28x28 "
               "paediatric radiographs (PneumoniaMNIST). For frontal chest radiographs only. "
               "Research/teaching starter model; not for clinical use.")
DOMAIN = {"modalities": ["CR", "DX"], "image_type": "projection",
          "body_region": "chest (frontal view, children aged 1-5)", "dims": 2,
          "spacing_mm": None, "min_slices": 1}
LIMITS = [
    "Trained on 4708 frontal paediatric chest radiographs from one centre (Guangzhou), "
    "shrunk to 28x28 pixels: far below diagnostic resolution.",
    "Not for CT, MR or ultrasound slices, lateral views or other body parts: it still "
    "answers 'normal' or 'pneumonia' on them, and the answer means nothing.",
    "Adult radiographs and other scanners are outside its training data; probabilities are "
    "not calibrated and specificity on the test split is only about 0.7.",
]

_ARCH_TEXT = {
    "small_cnn": ("the classic small CNN (our own factory `small_cnn`): conv3x3(32)-ReLU-"
                  "conv3x3(64)-ReLU-maxpool2-dropout(0.25)-flatten-FC(128)-ReLU-dropout(0.5)-"
                  "FC(2), valid convolutions, 28x28 input. Contains dropout: MC-dropout works."),
    "monai_resnet18": ("MONAI `ResNet` with basic blocks, layers [2, 2, 2, 2] (ResNet-18), "
                       "adapted to 28x28 inputs: a 3x3 stride-2 first convolution instead of "
                       "7x7 and no max-pool (stages at 14, 7, 4, 2 pixels instead of shrinking "
                       "28x28 to 7x7 before the first stage), half width (widen_factor 0.5: "
                       "32-64-128-256 channels) to keep the weights small (11 MB) and CPU "
                       "training short. "
                       "No dropout: use test-time augmentation for uncertainty."),
    "monai_densenet121": ("MONAI `DenseNet121` (2D, init_features 32, growth rate 16) with "
                          "dropout 0.2: MC-dropout works."),
}


_SIBLING = {
    "small_cnn": "`pneumonia-cxr` is the same task with a stronger MONAI ResNet-18 (the default).",
    "monai_resnet18": "`pneumonia-cxr-smallcnn` is the classic small CNN on the same data.",
    "monai_densenet121": "`pneumonia-cxr-smallcnn` is the classic small CNN on the same data.",
}


def _row(name: str, m: dict) -> str:
    return (f"| {name} | {m['accuracy']:.4f} | {m['auc']:.4f} | {m['sensitivity']:.4f} | "
            f"{m['specificity']:.4f} | {m['n']} |")


def readme_text(card: dict) -> str:
    t, m = card["training"], card["metrics"]
    arch = card["architecture"]["name"]
    return f"""# {card['name']} {card['version']} — chest X-ray pneumonia classifier (PneumoniaMNIST)

**Not for clinical use.** A research and teaching starter model for MedViewer: it shows how a
classifier, its saliency maps and its uncertainty behave. It has not been validated on any
clinical population and must not be used to diagnose or treat anyone.

## What it does
Input: one frontal chest radiograph, converted to grey, resized to 28x28 and normalised per
image (intensity `{card['input']['intensity']}`: the image's 0.5th/99.5th percentiles map to
0/1, clipped). Output: probabilities of `normal` and `pneumonia` (softmax). The predicted class
is `pneumonia` when p(pneumonia) >= 0.5.

Architecture: {_ARCH_TEXT[arch]}

Related: {_SIBLING[arch]}

## Data and licence
PneumoniaMNIST (MedMNIST v2; Yang et al., Scientific Data 2023; derived from Kermany et al.
2018 paediatric chest X-rays, Guangzhou), CC BY 4.0. File used:
`{t['data']}` (sha256 `{t['data_sha256']}`): train 4708 / val 524 / test 624 images. The train
split is a reconstruction (pneumonia images from one public copy, normal images from another;
see its PROVENANCE.tsv); val and test are the official ones. The weights are released under
CC BY 4.0 like the data they were trained on; the code is Apache-2.0.

## Metrics (threshold 0.5 on p(pneumonia); positive class = pneumonia)
The epoch was selected on the **validation** split ({m['selected_on']}); the test split was
evaluated once, after selection, for this card only.

| split | accuracy | AUC | sensitivity | specificity | n |
|---|---|---|---|---|---|
{_row('validation', m['validation'])}
{_row('test', m['test'])}

Reference point (not ours): MedMNIST v2 ResNet-18 (28) on the test split: accuracy 0.854,
AUC 0.944.

## Training (reproducible on CPU)
```
{t['command']}
```
seed {t['seed']}, {t['epochs']} epochs (best epoch {t['best_epoch']}), {t['optimizer']}, max
LR {t['lr']}, batch {t['batch_size']}, {t['loss']} loss; augmentation: {t['augmentation']}.
Wall time {t['wall_time_s']:.0f} s on {t['device']} (torch {t['torch']}, MONAI {t['monai']}).
`torch.use_deterministic_algorithms(True)` and fixed seeds: the same command on the same
software gives the same weights on CPU.

## What it was trained on (its domain)
{domain_section(card, DOMAIN)}

## Where it fails
{limits_section(card, LIMITS)}
- Class balance differs between train (74% pneumonia) and test (62%), so specificity on the
  test split is lower than sensitivity.
- The reconstructed train split takes its two classes from two copies of the data set;
  the network could pick up differences between those copies instead of anatomy.

## Out-of-distribution score
{ood_section(card)}
"""
