"""Write a fine-tuned version's card into its staging folder: model.json and README.md (the
weights file, :data:`WEIGHTS_FILE`, is written before; the card is written when the run commits
and its version number is known, see :func:`medviewer.ai.versions.commit_new_version`).

The card copies the base card's task, labels, input spec and architecture (so inference
preprocesses exactly as before), its domain and limits (fine-tuning on corrections does not
widen what the model was trained on), sets ``parent_version`` to the base version and records
the run in ``training`` (manifest hash and path, every argument, seed, device, world size,
per-epoch history, wall time) and the frozen-validation result in ``metrics``. Of the base's
OOD reference it keeps the input-histogram statistics (they describe the images, not the
weights); the feature statistics belong to the base's weights and are dropped, so the new
version's ``ood_score`` is the histogram component alone (in domain up to 1.0, its 99th
percentile on the base's held-out data).
"""
from __future__ import annotations

import json
from pathlib import Path

from medviewer.ai.cards import ModelCard
from medviewer.core.atomic import atomic_write_text

__all__ = ["candidate_card_dict", "write_candidate_card", "metrics_block", "WEIGHTS_FILE"]

WEIGHTS_FILE = "weights.safetensors"


def metrics_block(task: str, ev: dict, manifest_sha: str) -> dict:
    """The ``metrics`` object of a fine-tuned card from its :func:`evaluate` result."""
    ev = {k: v for k, v in ev.items() if k not in ("rows", "units", "unit_classes")}
    out = {"split": "frozen validation set of the training manifest",
           "manifest_sha256": manifest_sha, "frozen_val": ev, "n": ev.get("n", 0)}
    if task == "interactive":
        out.update(split="frozen validation prompt records (click protocol)",
                   mean_noc85=ev.get("value"), mean_noc90=ev.get("mean_noc90"),
                   mean_dice_1=ev.get("mean_dice_1"))
    elif task == "segmentation":
        out.update(mean_dice=ev.get("value"), dice=dict(ev.get("per_class", {})))
    else:
        out.update(accuracy=ev.get("value"), auc=ev.get("auc"),
                   sensitivity_per_class=dict(ev.get("per_class", {})))
    return out


def candidate_card_dict(base: ModelCard, version: str, metrics: dict, training: dict,
                        source: str = "corrected labels") -> dict:
    d = base.to_dict()
    if d.get("ood"):
        d["ood"] = inherited_ood(d["ood"])
    stem = base.description.split(" Fine-tuned from ")[0].split(" Trained from ")[0]
    how = (f"Trained from {base.ref} (untrained, made by 'models new') on labels people "
           f"confirmed" if base.untrained else f"Fine-tuned from {base.ref} on {source}")
    d.update(version=version, parent_version=base.version, metrics=metrics, training=training,
             description=f"{stem} {how}.".strip(),
             weights={"file": WEIGHTS_FILE, "sha256": "0" * 64})
    return d


def inherited_ood(ood: dict) -> dict:
    """The base's OOD block for a fine-tuned version: histogram statistics only."""
    out = {k: v for k, v in ood.items() if k not in ("features", "threshold", "scale")}
    if not ood.get("histogram"):
        return {}
    out.update(scale={"histogram": ood["scale"]["histogram"]}, threshold=1.0,
               method="ood_score = histogram W1 distance / its p99 on the base model's "
                      "held-out data (feature statistics belong to the base's weights)")
    return out


def _readme(card: dict, base: ModelCard) -> str:
    m, t = card["metrics"], card["training"]
    rows = "\n".join(f"| {k} | {'n/a' if v is None else f'{v:.4f}'} |"
                     for k, v in m["frozen_val"].get("per_class", {}).items())
    value = m["frozen_val"].get("value")
    verb = "trained from untrained" if base.untrained else "fine-tuned from"
    return f"""# {card['name']} {card['version']} ({verb} {base.ref})

{card['description']}

**Not for clinical use.** This version was {"trained" if base.untrained else "fine-tuned"} by
MedViewer from labels stored in a label workspace; it inherits every limitation of its parent
({base.ref}) and was checked only on the frozen validation cases of its training manifest.

## Where it fails (inherited from {base.ref})
{chr(10).join(f"- {x}" for x in card.get("limits", [])) or "- See the parent's card."}

## Validation ({m['frozen_val'].get('metric')}, {m['n']} case(s))
Main metric: {'n/a' if value is None else f'{value:.4f}'}

| label | value |
|---|---|
{rows}

## Training
Manifest `{t['manifest_sha256'][:12]}` ({t['train_samples']} training / {t['val_samples']}
validation samples), {t['epochs_run']} epoch(s) (best epoch {t['best_epoch']}), seed
{t['seed']}, device {t['device']}, {t['world_size']} process(es), wall time
{t['wall_time_s']:.0f} s. Command:

```
{t['command']}
```
"""


def write_candidate_card(folder: Path, base: ModelCard, version: str, weights_sha256: str,
                         metrics: dict, training: dict,
                         source: str = "corrected labels") -> ModelCard:
    """model.json + README.md for ``version`` into ``folder``, whose weights file
    (:data:`WEIGHTS_FILE`) is written already; returns the validated card. Called again with
    another version, it rewrites both (the version is taken when the run commits)."""
    folder = Path(folder)
    card = candidate_card_dict(base, version, metrics, training, source)
    card["weights"]["sha256"] = weights_sha256
    ModelCard.from_dict(card, folder)  # validate before writing
    atomic_write_text(folder / "model.json", json.dumps(card, indent=2) + "\n")
    atomic_write_text(folder / "README.md", _readme(card, base))
    written = ModelCard.load(folder)
    written.verify()
    return written

