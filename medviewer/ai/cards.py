"""Model cards: parse and validate ``models/<name>/<version>/model.json`` (no torch import).

A card says what a model does (task, labels), what it expects (input spec), how to build it
(architecture name + plain parameters, see :mod:`medviewer.ai.architectures`), which weights
file belongs to it (with its sha256), how well it did on held-out data and how it was trained.
Anything malformed raises :class:`ModelError` with a message that names the folder and field.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from medviewer.ai.architectures import ModelError, num_outputs, validate_params
from medviewer.ai.domain import validate_domain, validate_limits, validate_ood

__all__ = ["ModelCard", "ModelError", "CARD_FILE", "TASKS", "AUTOMATIC_TASKS", "parse_version", "file_sha256",
           "validate_input_spec", "UNTRAINED_VERSION", "is_model_name"]

CARD_FILE = "model.json"
TASKS = ("classification", "segmentation", "interactive")
# tasks the automatic AI runs offer (an interactive model runs from the prompt tool only)
AUTOMATIC_TASKS = ("classification", "segmentation")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")
# the version ``medviewer models new`` gives a new model's untrained weights (its card says
# ``training.untrained``); the first fine-tuned version is 1.0.0
UNTRAINED_VERSION = "0.0.0"


def is_model_name(name) -> bool:
    """Whether ``name`` may name a model (and its folder): lower-case letters, digits, '.',
    '_' or '-', starting with a letter or digit, at most 64 characters."""
    return isinstance(name, str) and bool(_NAME_RE.match(name))


def parse_version(version: str) -> tuple[int, int, int]:
    """``"1.10.0"`` -> ``(1, 10, 0)`` (for ordering); ModelError when not MAJOR.MINOR.PATCH."""
    m = _VERSION_RE.match(version) if isinstance(version, str) else None
    if not m:
        raise ModelError(f"version must look like 1.0.0, got {version!r}")
    return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _pos_numbers(value: Any, n: int, what: str, integer: bool = False) -> list:
    ok = (isinstance(value, list) and len(value) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value))
    if ok and integer:
        ok = all(isinstance(v, int) for v in value)
    if not ok:
        kind = "positive integers" if integer else "positive numbers"
        raise ModelError(f"input.{what} must be a list of {n} {kind}, got {value!r}")
    return [int(v) for v in value] if integer else [float(v) for v in value]


def _check_intensity(spec: Any) -> dict:
    if not isinstance(spec, dict) or "type" not in spec:
        raise ModelError("input.intensity must be an object with a 'type'")
    kind = spec["type"]
    keys = {"ct_window": ("center", "width"), "scale": ("min", "max"),
            "percentile": ("lo", "hi")}
    if kind not in keys:
        raise ModelError(f"input.intensity.type must be one of {sorted(keys)}, got {kind!r}")
    out = {"type": kind}
    for k in keys[kind]:
        v = spec.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ModelError(f"input.intensity.{k} must be a number, got {v!r}")
        out[k] = float(v)
    a, b = (out[k] for k in keys[kind])
    if kind == "ct_window" and b <= 0:
        raise ModelError("input.intensity.width must be > 0")
    if kind in ("scale", "percentile") and not a < b:
        raise ModelError(f"input.intensity: {keys[kind][0]} must be < {keys[kind][1]}")
    if kind == "percentile" and not (0 <= a and b <= 100):
        raise ModelError("input.intensity percentiles must lie in [0, 100]")
    return out


def validate_input_spec(task: str, spec: Any) -> dict:
    """Check the ``input`` object of a card for ``task``; return a normalised copy."""
    if not isinstance(spec, dict):
        raise ModelError("input must be an object")
    dims, channels = spec.get("dims"), spec.get("channels")
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ModelError(f"input.dims must be 2 or 3, got {dims!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ModelError(f"input.channels must be a positive integer, got {channels!r}")
    out = dict(spec)
    out["intensity"] = _check_intensity(spec.get("intensity"))
    if task in ("classification", "interactive"):
        out["size"] = _pos_numbers(spec.get("size"), dims, "size", integer=True)
    else:
        out["spacing"] = _pos_numbers(spec.get("spacing"), dims, "spacing")
        out["patch"] = _pos_numbers(spec.get("patch"), dims, "patch", integer=True)
    return out


@dataclass(frozen=True)
class ModelCard:
    """One model version as described by its ``model.json`` (see module docstring)."""

    name: str
    version: str
    task: str
    labels: list
    input: dict
    architecture: dict
    weights: dict
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    parent_version: Optional[str] = None
    license: str = ""
    description: str = ""
    folder: Optional[Path] = None
    domain: dict = field(default_factory=dict)  # what images it was trained on (ai.domain)
    ood: dict = field(default_factory=dict)  # reference statistics for the OOD score
    limits: list = field(default_factory=list)  # where it fails, in plain sentences
    superseded_by: Optional[str] = None  # the model name a user should use instead

    # -- convenience ---------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def version_key(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    @property
    def weights_path(self) -> Path:
        if self.folder is None:
            raise ModelError(f"{self.ref}: card has no folder")
        return self.folder / self.weights["file"]

    @property
    def ood_features_path(self) -> Optional[Path]:
        """The file of the training data's feature statistics, when the card lists one."""
        feats = self.ood.get("features") if self.ood else None
        if not feats or self.folder is None:
            return None
        return self.folder / feats["file"]

    @property
    def untrained(self) -> bool:
        """True for a new model's first version (``models new``): initialised, never trained.
        It is listed and fine-tuned from, never run on images nor promoted."""
        return bool((self.training or {}).get("untrained"))

    def summary(self) -> str:
        """One line for lists and tooltips: task, labels and the headline metrics."""
        keys = ("accuracy", "auc", "sensitivity", "specificity", "mean_dice")
        shown = {k: self.metrics[k] for k in keys if isinstance(self.metrics.get(k), (int, float))
                 and not isinstance(self.metrics.get(k), bool)}
        ms = ", ".join(f"{k} {v:.3f}" for k, v in shown.items())
        state = "; untrained" if self.untrained else ""
        return f"{self.ref} ({self.task}; {len(self.labels)} labels{state}){'; ' + ms if ms else ''}"

    # -- parsing ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, folder: Optional[Path] = None) -> "ModelCard":
        """Validate a parsed model.json object; ModelError with a clear message otherwise."""
        where = f"model card in {folder}" if folder is not None else "model card"
        try:
            return cls._from_dict(data, folder)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None

    @classmethod
    def _from_dict(cls, data: Any, folder: Optional[Path]) -> "ModelCard":
        if not isinstance(data, dict):
            raise ModelError("model.json must hold a JSON object")
        if not _is_plain(data):
            raise ModelError("model.json must hold plain JSON values only")
        for key in ("name", "version", "task", "labels", "input", "architecture", "weights"):
            if key not in data:
                raise ModelError(f"missing field {key!r}")
        name = data["name"]
        if not is_model_name(name):
            raise ModelError(f"name must be lower-case letters, digits, '.', '_' or '-', "
                             f"got {name!r}")
        version = data["version"]
        parse_version(version)
        task = data["task"]
        if task not in TASKS:
            raise ModelError(f"task must be one of {list(TASKS)}, got {task!r}")
        labels = data["labels"]
        if (not isinstance(labels, list) or len(labels) < 2
                or not all(isinstance(x, str) and x.strip() for x in labels)):
            raise ModelError("labels must be a list of at least two non-empty names")
        if len(set(labels)) != len(labels):
            raise ModelError("labels must be unique")
        if task in ("segmentation", "interactive") and labels[0] != "background":
            raise ModelError("segmentation labels must start with 'background' (index 0)")
        spec = validate_input_spec(task, data["input"])
        arch = data["architecture"]
        if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
            raise ModelError("architecture must be an object with a 'name'")
        extra = sorted(set(arch) - {"name", "params"})
        if extra:
            raise ModelError(f"architecture has unknown field(s) {extra}")
        params = validate_params(arch["name"], arch.get("params", {}))
        n_out = num_outputs(arch["name"], params)
        if n_out != len(labels):
            raise ModelError(f"the network gives {n_out} outputs but the card lists "
                             f"{len(labels)} labels")
        if params.get("in_channels", spec["channels"]) != spec["channels"]:
            raise ModelError(f"input.channels ({spec['channels']}) differs from the "
                             f"architecture's in_channels ({params['in_channels']})")
        if "spatial_dims" in params and params["spatial_dims"] != spec["dims"]:
            raise ModelError(f"input.dims ({spec['dims']}) differs from the architecture's "
                             f"spatial_dims ({params['spatial_dims']})")
        if arch["name"] == "small_cnn" and spec.get("size") != [params["input_size"]] * 2:
            raise ModelError(f"small_cnn needs input.size [{params['input_size']}, "
                             f"{params['input_size']}]")
        dom = data.get("domain")
        if isinstance(dom, dict) and dom.get("dims", spec["dims"]) != spec["dims"]:
            raise ModelError(f"domain.dims ({dom.get('dims')}) differs from input.dims "
                             f"({spec['dims']})")
        weights = data["weights"]
        if not isinstance(weights, dict):
            raise ModelError("weights must be an object with 'file' and 'sha256'")
        wfile, sha = weights.get("file"), weights.get("sha256")
        if (not isinstance(wfile, str) or Path(wfile).name != wfile or wfile.startswith(".")
                or not wfile.endswith(_WEIGHT_SUFFIXES)):
            raise ModelError(f"weights.file must be a plain file name ending in "
                             f"{'/'.join(_WEIGHT_SUFFIXES)}, got {wfile!r}")
        if not isinstance(sha, str) or not _SHA_RE.match(sha):
            raise ModelError("weights.sha256 must be 64 lower-case hex digits")
        parent = data.get("parent_version")
        if parent is not None:
            parse_version(parent)
        for key in ("metrics", "training"):
            if not isinstance(data.get(key, {}), dict):
                raise ModelError(f"{key} must be an object")
        successor = data.get("superseded_by")
        if successor is not None and (not isinstance(successor, str) or not successor.strip()):
            raise ModelError(f"superseded_by must be a model name, got {successor!r}")
        return cls(name=name, version=version, task=task, labels=list(labels), input=spec,
                   architecture={"name": arch["name"], "params": params},
                   weights={"file": wfile, "sha256": sha}, metrics=dict(data.get("metrics", {})),
                   training=dict(data.get("training", {})), parent_version=parent,
                   license=str(data.get("license", "")),
                   description=str(data.get("description", "")),
                   folder=Path(folder) if folder is not None else None,
                   domain=validate_domain(data.get("domain")), ood=validate_ood(data.get("ood")),
                   limits=validate_limits(data.get("limits")), superseded_by=successor)

    @classmethod
    def load(cls, folder) -> "ModelCard":
        """Read and validate ``folder/model.json`` (hashes are checked by :meth:`verify`)."""
        folder = Path(folder)
        path = folder / CARD_FILE
        if not path.is_file():
            raise ModelError(f"{folder}: no {CARD_FILE} in this folder")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: not readable JSON ({exc})") from None
        return cls.from_dict(data, folder)

    def to_dict(self) -> dict:
        """The JSON object for model.json (``folder`` is not stored)."""
        return {"name": self.name, "version": self.version, "task": self.task,
                "description": self.description, "labels": list(self.labels),
                "input": self.input, "architecture": self.architecture,
                "weights": self.weights, "metrics": self.metrics, "training": self.training,
                "parent_version": self.parent_version, "license": self.license,
                **({"domain": self.domain} if self.domain else {}),
                **({"limits": list(self.limits)} if self.limits else {}),
                **({"ood": self.ood} if self.ood else {}),
                **({"superseded_by": self.superseded_by} if self.superseded_by else {})}

    def verify(self) -> None:
        """Check the weights file exists and matches its sha256; ModelError otherwise."""
        path = self.weights_path
        if not path.is_file():
            raise ModelError(f"{self.ref}: weights file {path.name} is missing in {self.folder}")
        actual = file_sha256(path)
        if actual != self.weights["sha256"]:
            raise ModelError(f"{self.ref}: weights file {path.name} does not match the card's "
                             f"sha256 (expected {self.weights['sha256'][:12]}..., "
                             f"got {actual[:12]}...); refusing to use it")
        ref = self.ood_features_path
        if ref is not None and (not ref.is_file()
                                or file_sha256(ref) != self.ood["features"]["sha256"]):
            raise ModelError(f"{self.ref}: the OOD reference file {ref.name} is missing or does "
                             f"not match the card's sha256; refusing to use it")
