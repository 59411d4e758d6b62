"""The whole-trunk CT segmentation starter's card texts: description, domain, limits, README."""
from __future__ import annotations

from medviewer.ai.starters.card_sections import domain_section, limits_section, ood_section

DESCRIPTION = ("2.5D CT segmentation of the large structures of chest and abdomen (lungs, "
               "heart, aorta, liver, spleen, kidneys, stomach, gallbladder, bladder, spine), "
               "trained on every labelled CT in the shared data: three scans, labels from "
               "TotalSegmentator. Demonstration model; not for clinical use.")
DOMAIN = {"modalities": ["CT"], "image_type": "volume",
          "body_region": "chest and abdomen CT (trunk), axial series", "dims": 2,
          "spacing_mm": [0.4, 3.5], "min_slices": 1}
LIMITS = [
    "Trained on three scans (an abdomen-pelvis CT, an upper-abdominal slab and a chest CT "
    "angiogram crop); its labels are another model's output (TotalSegmentator), not manual "
    "outlines. The neck, the shoulders and the arms were never seen in training, and the "
    "chest wall above the lung bases only in a 19 cm crop.",
    "The lungs are TotalSegmentator's only at the lung bases; above them a rule labelled the "
    "crop's aerated lung (sided at the midline). The heart was labelled only in a "
    "contrast-enhanced angiogram (contrast removal is simulated in training). The network "
    "alone leaves stretches of a lung's edge out on an unfamiliar chest and labels the "
    "trachea as lung; the post-processing (see Input) corrects both by Hounsfield units.",
    "The gallbladder was labelled in one scan only: its held-out Dice is 0, and its label is "
    "not to be trusted.",
    "Not for radiographs, MR, PET or ultrasound, nor for coronal or sagittal series.",
    "Slice by slice with 3 mm of context above and below: a single slice gets its context "
    "from itself, and the whole-volume clean-up (largest component per organ) runs only when "
    "more than one slice is segmented; labels outside the body are cleared on every slice "
    "whose body lies inside the field of view.",
]


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _rule_lungs(m: dict) -> str:
    """The lungs against a rule reference (no held-out slab has TotalSegmentator lungs)."""
    rule = m.get("rule_reference")
    if not rule:
        return ""
    rows = "\n".join(
        f"| {case}, {how.replace('_', ' ')} | " + " | ".join(
            _fmt(d.get(k)) for k in ("lungs", "lung_left", "lung_right")) + " |"
        for case, runs in sorted(rule["dice"].items()) for how, d in runs.items())
    return f"""
No held-out slab holds TotalSegmentator's lungs (A's slab lies below the lung bases), so the
lungs (n/a above) are measured against a rule instead: {rule['method']}.

| case, how | both lungs | lung_left | lung_right |
|---|---|---|---|
{rows}
"""


def readme_text(card: dict) -> str:
    t, m, p, i = card["training"], card["metrics"], card["architecture"]["params"], card["input"]
    per_case = m.get("per_case", {})
    rows = "\n".join(
        f"| {k} | {_fmt(v)} | " + " | ".join(_fmt(per_case.get(c, {}).get(k))
                                             for c in sorted(per_case)) + " |"
        for k, v in m["dice"].items())
    head = " | ".join(f"case {c}" for c in sorted(per_case))
    held = ", ".join(f"case {k}: {v}" for k, v in m["held_out_slabs"].items())
    hashes = "\n".join(f"- `{k}`: `{v}`" for k, v in t["data_sha256"].items())
    labels = ", ".join(f"{n} {name}" for n, name in enumerate(card["labels"]))
    return f"""# {card['name']} {card['version']} — CT segmentation of chest and abdomen (demonstration)

**Not for clinical use.** A starter model trained on three scans whose labels are **the output
of another model (TotalSegmentator), not manual outlines**.

## What it does
Input: an axial CT series in Hounsfield units. Each slice goes to the network with the volume
{i['context_mm'][2]:g} mm below and above it (channels at {i['context_mm']} mm, interpolated
along z, so thin and thick slices give the same input), CT window
[{i['intensity']['center'] - i['intensity']['width'] / 2:g}, {i['intensity']['center'] + i['intensity']['width'] / 2:g}] HU scaled to [0, 1],
in-plane spacing {i['spacing']} mm; one whole-slice window up to {i['patch']} pixels
({i['patch'][0] * i['spacing'][0]:g} mm). After the whole volume, each organ keeps its largest
3D piece, specks under {i['postprocess']['min_component_ml']:g} ml go, and on each slice
labels outside the body (tissue above {i['postprocess'].get('inside_body_hu', 'n/a')} HU, holes
filled, grown by 2 mm) are cleared; {', '.join(i['postprocess'].get('trim_tails', {}))} end at
the first slice, up or down from their largest cross-section, under
{100 * max(i['postprocess'].get('trim_tails', {}).values(), default=0):g} % of its area (a vessel
joined to the heart by a thin bridge is not heart). Lungs ({', '.join(i['postprocess'].get('aerated_labels', [])) or 'n/a'}),
slice by slice: an airway lumen that soft tissue encloses (the trachea, a main bronchus) loses
its lung label, and the aerated voxels of a region the network mostly labelled lung are
completed with the nearest lung's label (a stretch of lung edge the network leaves out on an
unfamiliar chest).
Labels: {labels}.

Architecture: MONAI `UNet` (2D, {p['in_channels']} input channels, channels {p['channels']},
strides {p['strides']}, {p['num_res_units']} residual units, instance norm, dropout
{p['dropout']}: MC-dropout uncertainty works).

Why 2.5D and not 3D: on a 2-core CPU a whole CT in 3D windows takes minutes and three scans
hold too few 3D patches; three slices of context stop slice-to-slice streaks at 2D speed.

## Data and licence
{t['data']} Partial labels: {t['partial_labels']}. Not used: {t.get('not_used', 'n/a')}. sha256 (a folder: sha256 of its sorted
`name:sha256` lines):
{hashes}

The weights are released under Apache-2.0.

## Metrics: Dice per structure on held-out slabs
Slabs never trained on and not used for any choice ({held}); {m['dice_method']}.

| structure | mean | {head} |
|---|---|{'---|' * len(per_case)}
{rows}
| **mean** | **{m['mean_dice']:.3f}** |{' |' * len(per_case)}

{_rule_lungs(m)}
These numbers measure agreement with TotalSegmentator on slabs of the same three scans: they
say little about other patients and scanners.

## Training (reproducible on CPU)
```
{t['command']}
```
{('Post-processing, card texts and metrics brought up to date, weights untouched, by `' + t['metrics_command'] + '`.') if t.get('metrics_command') else ''}
seed {t['seed']}, {t['steps']} steps of {t['batch_size']} random {t['crop']}^2 crops,
{t['optimizer']}, max LR {t['lr']}, {t['loss']}; augmentation: {t['augmentation']}. Wall time
{t['wall_time_s']:.0f} s on {t['device']} (torch {t['torch']}, MONAI {t['monai']}).

## What it was trained on (its domain)
{domain_section(card, DOMAIN)}

## Where it fails
{limits_section(card, LIMITS)}

## Out-of-distribution score
{ood_section(card)}
"""
