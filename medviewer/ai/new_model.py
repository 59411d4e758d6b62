"""A new model for a person's own task (``medviewer models new``, AI > New model…): its card,
its initial weights and its untrained first version in the user models folder.

The network is one of the built-in families: the pneumonia classifier's MONAI ResNet-18 (or its
small CNN) for classification, the CT organ model's 2D MONAI U-Net for segmentation. With a
base model (``--from BASE``) the new model takes the base's family and parameters, input spec
and intensity normalisation (options given explicitly win), and every weight tensor whose name
and shape fit is copied from the base; the rest (the output layer when the label count differs,
the first convolution when the channel count differs) keeps its seeded random initialisation.
Which tensors were copied and which skipped (and why) is returned and written into the card.

The version is :data:`~medviewer.ai.cards.UNTRAINED_VERSION` (0.0.0) with
``training.untrained`` true: listed and fine-tuned from, never run on images nor promoted
(:mod:`medviewer.ai.versions`). It is assembled in a staging folder and appears by one rename;
the model's active pointer then names it (action "create"). Its domain comes from the options:
the modality (none: not checked), the image type (default: "projection" for radiograph
modalities, else "any" for a classifier — a slice or an exported PNG of it alike — and "volume"
for a segmentation model) and the body region. torch is imported only by :func:`create_model`.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from medviewer.ai.architectures import ModelError, validate_params
from medviewer.ai.cards import (UNTRAINED_VERSION, ModelCard, is_model_name,
                                validate_input_spec)
from medviewer.ai.domain import ANY_IMAGE_TYPE, IMAGE_TYPES, PROJECTION_MODALITIES

__all__ = ["NewModelOptions", "FAMILIES", "NEW_TASKS", "card_for_new_model", "create_model",
           "parse_labels"]

NEW_TASKS = ("classification", "segmentation")
# family name (what a person picks) -> (task, architecture name)
FAMILIES = {"resnet18": ("classification", "monai_resnet18"),
            "small_cnn": ("classification", "small_cnn"),
            "unet": ("segmentation", "monai_unet")}
_DEFAULT_FAMILY = {"classification": "resnet18", "segmentation": "unet"}
# the built-in models' parameters (pneumonia-cxr, pneumonia-cxr-smallcnn, ct-abdomen-organs)
_FAMILY_PARAMS = {
    "monai_resnet18": {"spatial_dims": 2, "block_inplanes": [64, 128, 256, 512],
                       "conv1_size": 3, "conv1_stride": 2, "no_max_pool": True,
                       "widen_factor": 0.5},
    "small_cnn": {"conv_channels": [32, 64], "hidden": 128, "dropout_conv": 0.25,
                  "dropout_fc": 0.5},
    "monai_unet": {"spatial_dims": 2, "channels": [16, 32, 64, 128, 256],
                   "strides": [2, 2, 2, 2], "num_res_units": 2, "norm": "instance",
                   "dropout": 0.1},
}
DEFAULT_SIZE = {"classification": 64, "segmentation": 160}
DEFAULT_SPACING_MM = 1.0
_PERCENTILE = {"type": "percentile", "lo": 0.5, "hi": 99.5}
_MAX_LABEL = 64
WEIGHTS_FILE = "weights.safetensors"


@dataclass(frozen=True)
class NewModelOptions:
    """What a person chooses for a new model (None: the default, or the base model's value)."""

    name: str
    task: str
    labels: tuple  # classes (classification) or foreground labels (segmentation)
    base: Optional[str] = None  # "name" or "name:version" to initialise the backbone from
    family: Optional[str] = None  # a key of FAMILIES (default by task; with a base: the base's)
    input_size: Optional[int] = None  # classification: input size; segmentation: patch size
    channels: Optional[int] = None
    modality: str = ""  # DICOM modality code of the images (domain); "" = not checked
    image_type: Optional[str] = None  # "projection", "volume" or "any"
    body_region: str = ""
    spacing_mm: Optional[float] = None  # segmentation: in-plane pixel spacing of the model grid
    window: Optional[tuple] = None  # (centre, width): a fixed window instead of percentiles
    seed: int = 0
    description: str = ""
    extra: dict = field(default_factory=dict)  # recorded in training (e.g. the command line)


def parse_labels(text) -> tuple:
    """``"a, b,c"`` (or a list) -> ("a", "b", "c"); blanks dropped, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return tuple(str(x).strip() for x in items if str(x).strip())


def _check_labels(task: str, labels) -> list:
    labels = list(parse_labels(labels))
    if task == "classification" and len(labels) < 2:
        raise ModelError(f"a classification model needs at least two classes, got "
                         f"{len(labels)} ({', '.join(labels) or 'none'})")
    if task == "segmentation" and not labels:
        raise ModelError("a segmentation model needs at least one label (background is added)")
    lower = [x.lower() for x in labels]
    dup = sorted({x for x in labels if lower.count(x.lower()) > 1})
    if dup:
        raise ModelError(f"labels must be unique (ignoring case): {', '.join(dup)} repeated")
    for x in labels:
        if len(x) > _MAX_LABEL or not x.isprintable():
            raise ModelError(f"label {x[:_MAX_LABEL]!r}… must be printable text of at most "
                             f"{_MAX_LABEL} characters")
    if task == "segmentation":
        if "background" in lower:
            raise ModelError("do not list 'background': a segmentation model's label 0 is "
                             "background already")
        labels = ["background"] + labels
    return labels


def _base_card(registry, ref: Optional[str], task: str) -> Optional[ModelCard]:
    if not ref:
        return None
    card = registry.get(ref)
    if card.untrained:
        raise ModelError(f"--from {card.ref}: it is untrained itself; there is nothing to copy")
    if card.task != task:
        raise ModelError(f"--from {card.ref}: it is a {card.task} model; a {task} model starts "
                         f"only from a {task} base (its network must do the same kind of work)")
    if int(card.input.get("dims", 2)) != 2:
        raise ModelError(f"--from {card.ref}: a 3D model; new models are 2D")
    return card


def _architecture(opts: NewModelOptions, base: Optional[ModelCard], n_out: int, channels: int,
                  size: int) -> dict:
    if base is not None:
        name = base.architecture["name"]
        params = dict(base.architecture["params"])
        if opts.family and FAMILIES[opts.family][1] != name:
            raise ModelError(f"--from {base.ref} is a {name} network, not {opts.family}")
    else:
        family = opts.family or _DEFAULT_FAMILY[opts.task]
        ftask, name = FAMILIES[family]
        if ftask != opts.task:
            raise ModelError(f"architecture {family} is for {ftask}, not {opts.task}")
        params = dict(_FAMILY_PARAMS[name])
    params["in_channels"] = channels
    params["out_channels" if name == "monai_unet" else "num_classes"] = n_out
    if name == "small_cnn":
        params["input_size"] = size
    return {"name": name, "params": validate_params(name, params)}


def _intensity(opts: NewModelOptions, base: Optional[ModelCard]) -> dict:
    if opts.window is not None:
        c, w = (float(v) for v in opts.window)
        if not w > 0:
            raise ModelError(f"--window: the width must be > 0, got {w:g}")
        return {"type": "ct_window", "center": c, "width": w}
    if base is not None:
        return dict(base.input["intensity"])
    return dict(_PERCENTILE)


def _input_spec(opts: NewModelOptions, base: Optional[ModelCard]) -> tuple:
    """(input spec, channels, size) from the options, the base, or the defaults."""
    spec_b = base.input if base is not None else {}
    channels = opts.channels or int(spec_b.get("channels", 1))
    if opts.task == "classification":
        size = opts.input_size or (int(spec_b["size"][0]) if spec_b else
                                   DEFAULT_SIZE["classification"])
        if not 8 <= size <= 512:
            raise ModelError(f"--input-size must be 8..512 pixels, got {size}")
        spec = {"dims": 2, "channels": channels, "size": [size, size],
                "notes": "the image (grey; colour converted) centre-cropped to a square and "
                         f"resized to {size}x{size}"}
    else:
        size = opts.input_size or (int(spec_b["patch"][0]) if spec_b else
                                   DEFAULT_SIZE["segmentation"])
        if not 32 <= size <= 512 or size % 16:
            raise ModelError(f"--input-size (the patch) must be a multiple of 16 in 32..512 "
                             f"for the U-Net, got {size}")
        sp = opts.spacing_mm or (float(spec_b["spacing"][0]) if spec_b else DEFAULT_SPACING_MM)
        if not 0 < sp <= 20:
            raise ModelError(f"--spacing must be in (0, 20] mm, got {sp:g}")
        spec = {"dims": 2, "channels": channels, "spacing": [sp, sp], "patch": [size, size]}
    if not 1 <= channels <= 16:
        raise ModelError(f"--channels must be 1..16, got {channels}")
    spec["intensity"] = _intensity(opts, base)
    if opts.modality:
        spec["modality"] = opts.modality
    return validate_input_spec(opts.task, spec), channels, size


def _domain(opts: NewModelOptions) -> dict:
    mod = opts.modality.strip().upper()
    kind = opts.image_type
    if kind is None:
        if mod in PROJECTION_MODALITIES:
            kind = "projection"
        else:
            kind = "volume" if opts.task == "segmentation" else ANY_IMAGE_TYPE
    if kind not in IMAGE_TYPES + (ANY_IMAGE_TYPE,):
        raise ModelError(f"image type must be one of {list(IMAGE_TYPES + (ANY_IMAGE_TYPE,))}, "
                         f"got {kind!r}")
    return {"modalities": [mod] if mod else [], "image_type": kind,
            "body_region": opts.body_region.strip(), "dims": 2, "spacing_mm": None,
            "min_slices": 1}


def _limits(opts: NewModelOptions, domain: dict) -> list:
    mods = "/".join(domain["modalities"]) or "any modality (none was given, so none is checked)"
    return [
        "Made in MedViewer for a person's own task and trained only on the labels of the "
        "workspace it was fine-tuned on (imported or confirmed there); it is judged only on "
        "that workspace's frozen validation set, never on an independent test set.",
        f"Meant for {mods} images" + (f" of the {domain['body_region']}"
                                      if domain["body_region"] else "")
        + "; anything else is outside what it was trained on, whatever it answers.",
        "Not for clinical use.",
    ]


def card_for_new_model(opts: NewModelOptions, registry) -> tuple[dict, Optional[ModelCard]]:
    """(the validated model.json object of the new model without its weights hash, the base
    card or None); ModelError with a clear message for any bad option. No torch."""
    if not is_model_name(opts.name):
        raise ModelError(f"model name {opts.name!r}: use 1-64 lower-case letters, digits, '.', "
                         f"'_' or '-', starting with a letter or digit (it names a folder)")
    existing = [c for c in registry.list() if c.name == opts.name]
    folders = [root / opts.name for root in (registry.user_dir, registry.builtin_dir)]
    if existing or any(f.exists() for f in folders):
        raise ModelError(f"a model named {opts.name!r} exists already; choose another name (or "
                         f"fine-tune that one: medviewer finetune --base {opts.name})")
    if opts.task not in NEW_TASKS:
        raise ModelError(f"task must be one of {list(NEW_TASKS)}, got {opts.task!r}")
    if opts.family is not None and opts.family not in FAMILIES:
        raise ModelError(f"architecture must be one of {sorted(FAMILIES)}, got {opts.family!r}")
    labels = _check_labels(opts.task, opts.labels)
    base = _base_card(registry, opts.base, opts.task)
    spec, channels, size = _input_spec(opts, base)
    arch = _architecture(opts, base, len(labels), channels, size)
    domain = _domain(opts)
    what = ", ".join(labels[1:] if opts.task == "segmentation" else labels)
    card = {
        "name": opts.name, "version": UNTRAINED_VERSION, "task": opts.task,
        "description": opts.description.strip() or (
            f"{opts.name}: a {opts.task} model ({what}) made in MedViewer"
            + (f", initialised from {base.ref}" if base is not None else "") + "."),
        "labels": labels, "input": spec, "architecture": arch,
        "weights": {"file": WEIGHTS_FILE, "sha256": "0" * 64}, "metrics": {},
        "training": {"untrained": True,
                     "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "initialised_from": base.ref if base is not None else None,
                     "seed": int(opts.seed), **dict(opts.extra)},
        "parent_version": None, "license": "", "domain": domain,
        "limits": _limits(opts, domain),
    }
    ModelCard.from_dict(card)  # every field checked before any torch work
    return card, base


def _initial_model(card: dict, base: Optional[ModelCard], seed: int) -> tuple:
    """(network seeded at ``seed``, {"copied": [names], "skipped": [{"layer", "reason"}]})."""
    import torch

    from medviewer.ai.architectures import build
    from medviewer.ai.weights import read_state_dict

    with torch.random.fork_rng(devices=[]):  # the caller's random state is left alone
        torch.manual_seed(int(seed))
        model = build(card["architecture"]["name"], card["architecture"]["params"])
    report: dict = {"copied": [], "skipped": []}
    if base is None:
        return model, report
    base.verify()
    src = read_state_dict(base.weights_path)
    own = model.state_dict()
    take = {}
    for key, tensor in own.items():
        theirs = src.get(key)
        if theirs is None:
            report["skipped"].append({"layer": key, "reason": "not in the base"})
        elif tuple(theirs.shape) != tuple(tensor.shape):
            report["skipped"].append({"layer": key, "reason": f"shape {list(theirs.shape)} in "
                                      f"the base, {list(tensor.shape)} here"})
        else:
            take[key] = theirs.to(tensor.dtype)
            report["copied"].append(key)
    model.load_state_dict({**own, **take})
    return model, report


def _readme(card: dict, report: dict) -> str:
    base = card["training"]["initialised_from"]
    init = (f"Initialised from `{base}`: {len(report['copied'])} weight tensors copied, "
            f"{len(report['skipped'])} left at their random initialisation"
            + ("".join(f"\n- `{s['layer']}`: {s['reason']}" for s in report["skipped"]))
            if base else f"Random initialisation (seed {card['training']['seed']}).")
    labels = card["labels"][1:] if card["task"] == "segmentation" else card["labels"]
    return f"""# {card['name']} {card['version']} — untrained

{card['description']}

**Untrained.** This version was made by `medviewer models new` and has never seen a labelled
image: it is not offered for runs and cannot be promoted. Train it with
`medviewer finetune --workspace WORKSPACE --base {card['name']}`; its first version, 1.0.0,
becomes active only when it beats the trivial baseline on the frozen validation set
(classification: the majority class; segmentation: an all-background label map).

- Task: {card['task']}; labels: {', '.join(labels)}
- Network: {card['architecture']['name']}; input {json.dumps(card['input'])}
- Domain: {json.dumps(card['domain'])}

## Initialisation
{init}

## Limits
{chr(10).join(f"- {x}" for x in card['limits'])}
"""


def create_model(registry, opts: NewModelOptions) -> tuple[ModelCard, dict]:
    """Make the untrained first version of a new model in ``registry``'s user folder and point
    the model at it; (its card, the initialisation report). ModelError says why not."""
    from medviewer.ai import versions
    from medviewer.ai.weights import check_output_size, save_weights
    from medviewer.core.atomic import atomic_write_text

    card, base = card_for_new_model(opts, registry)
    model, report = _initial_model(card, base, opts.seed)
    card["training"]["initialisation"] = {
        "copied": len(report["copied"]), "skipped": report["skipped"]}
    model.eval()
    parent = registry.user_dir / opts.name
    made_parent = not parent.exists()
    staging = versions.staging_dir(registry, opts.name)
    try:
        card["weights"]["sha256"] = save_weights(model, staging / WEIGHTS_FILE)
        written = ModelCard.from_dict(card, staging)
        check_output_size(written, model)
        atomic_write_text(staging / "model.json", json.dumps(card, indent=2) + "\n")
        atomic_write_text(staging / "README.md", _readme(card, report))
        folder = versions.commit_version(staging, registry, opts.name, UNTRAINED_VERSION)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made_parent:
            shutil.rmtree(parent, ignore_errors=True)
        raise
    versions.point_at_new_model(registry, opts.name, UNTRAINED_VERSION,
                                reason="created by 'models new' (untrained)")
    return ModelCard.load(folder), report
