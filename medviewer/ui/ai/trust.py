"""What the AI dock says about trusting a model on an image: does it fit (domain), its limits,
and whether a prediction's input was outside the training data (OOD) or forced."""
from __future__ import annotations

from medviewer.services.model_fit import OOD_MESSAGE, card_limits

__all__ = ["trust_note", "trust_html", "fit_html", "limits_text", "card_tooltip"]


def trust_note(run) -> str:
    """'; forced' / '; outside what this model was trained on' for a status line."""
    out = "; FORCED onto an image outside its domain" if run.forced else ""
    if run.ood.get("in_domain") is False:
        out += f"; {OOD_MESSAGE} (OOD score {run.ood['ood_score']:.2f})"
    return out


def trust_html(run) -> str:
    """The warning shown under a result: forced, and/or outside the training data ("" when
    neither)."""
    if run is None:
        return ""
    parts = []
    if run.forced:
        parts.append(f"<b>Forced run</b>: this model does not fit this image "
                     f"({run.domain_reason}).")
    ood = run.ood or {}
    if ood.get("in_domain") is False:
        parts.append(f"<b>&#9888; {OOD_MESSAGE[0].upper() + OOD_MESSAGE[1:]}</b> "
                     f"(OOD score {ood['ood_score']:.2f}, threshold {ood['threshold']:.2f}): "
                     f"do not trust this result.")
    return "<br>".join(parts)


def fit_html(fit) -> str:
    """The tooltip line of a model that does not fit the active image ("" when it fits)."""
    if fit is None or fit.fits:
        return ""
    return (f"<b>Not for this image:</b> {fit.reason}.<br><i>Right-click it to run it anyway "
            f"(the result is marked 'forced').</i>")


def limits_text(card) -> str:
    """The model's limits, one per line ("" when its card has none)."""
    return "\n".join(f"• {x}" for x in card_limits(card)) if card is not None else ""


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:.3f}"


def _domain_line(card) -> str:
    d = card.domain or {}
    if not d:
        return ""
    kind = "projection radiographs" if d.get("image_type") == "projection" else "volumes"
    return (f"Trained on: {'/'.join(d.get('modalities', []))} {kind}"
            f"{'; ' + d['body_region'] if d.get('body_region') else ''}")


def card_tooltip(card, fit=None) -> str:
    lines = [f"<b>{card.ref}</b> — {card.task}"]
    if fit_html(fit):
        lines.append(fit_html(fit))
    lines.append(f"Labels: {', '.join(map(str, card.labels))}")
    if card.description:
        lines.append(card.description)
    if _domain_line(card):
        lines.append(_domain_line(card))
    if card.limits:
        lines.append("Where it fails:<br>" + limits_text(card).replace("\n", "<br>"))
    metrics = {k: v for k, v in card.metrics.items() if _is_number(v)}
    if metrics:
        lines.append("Held-out metrics: " + ", ".join(f"{k} {_num(v)}" for k, v in metrics.items()))
    for k, v in card.metrics.items():
        if isinstance(v, dict) and v and all(_is_number(x) for x in v.values()):
            lines.append(f"{k}: " + ", ".join(f"{n} {_num(x)}" for n, x in v.items()))
    if card.license:
        lines.append(f"Licence: {card.license}")
    return "<br>".join(lines)
