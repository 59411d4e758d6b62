"""README.md sections shared by the starter model cards: the domain and the OOD score."""
from __future__ import annotations

__all__ = ["domain_section", "ood_section", "limits_section"]


def domain_section(card: dict, default: dict) -> str:
    d = card.get("domain") or default
    sp = d.get("spacing_mm")
    return (f"- modality: {', '.join(d['modalities'])}; image type: {d['image_type']} "
            f"({d['dims']}D model)\n- body region: {d.get('body_region', '')}\n"
            f"- in-plane pixel spacing: {f'{sp[0]:g}-{sp[1]:g} mm' if sp else 'not checked'}\n\n"
            f"MedViewer offers the model only for images that fit this domain (the others are "
            f"listed greyed, with the reason; `medviewer predict` refuses them with exit code 2 "
            f"unless `--force`, and a forced run is marked as such in its record).")


def limits_section(card: dict, default: list) -> str:
    return "\n".join(f"- {x}" for x in card.get("limits") or default)


def ood_section(card: dict) -> str:
    o = card.get("ood")
    if not o:
        return "No reference statistics yet: predictions carry no OOD score."
    cal = o.get("calibration", {})
    return (f"Every prediction is scored for how far its input lies from the training data: "
            f"{o['method']}.\n\nReference: {cal.get('reference', '')}. Scales and threshold: "
            f"{cal.get('percentile', 99):g}th percentiles on {cal.get('calibration', '')} "
            f"(histogram {o['scale'].get('histogram', 0):.4g}, features "
            f"{o['scale'].get('features', 0):.4g}, threshold {o['threshold']:.4g}; "
            f"{cal.get('n_calibration', '?')} held-out samples). Reproduce with "
            f"`{cal.get('command', '')}`.")
