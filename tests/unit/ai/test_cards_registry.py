"""Model cards and the registry: validation, hash checks, import, listing, lazy torch."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.ai.cards import ModelCard, ModelError
from medviewer.ai.registry import ModelRegistry, load_model

REPO = Path(__file__).resolve().parents[3]
BUILTIN = REPO / "models"
SMALL = {"in_channels": 1, "num_classes": 2, "input_size": 28, "conv_channels": [4, 8],
         "hidden": 16, "dropout_conv": 0.25, "dropout_fc": 0.5}


def _card(name="toy-cxr", version="1.0.0", **over) -> dict:
    d = {"name": name, "version": version, "task": "classification",
         "labels": ["normal", "pneumonia"],
         "input": {"dims": 2, "channels": 1, "size": [28, 28],
                   "intensity": {"type": "percentile", "lo": 0.5, "hi": 99.5}},
         "architecture": {"name": "small_cnn", "params": dict(SMALL)},
         "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
         "metrics": {"accuracy": 0.5}, "training": {"seed": 0}, "license": "CC BY 4.0"}
    d.update(over)
    return d


def _make_folder(root: Path, name="toy-cxr", version="1.0.0", seed=0, **over) -> Path:
    """A real model folder: an untrained small_cnn's weights + a card with their hash."""
    import torch

    from medviewer.ai.architectures import build
    from medviewer.ai.starters.common import write_model_folder

    torch.manual_seed(seed)
    d = _card(name, version, **over)
    model = build(d["architecture"]["name"], d["architecture"]["params"])
    folder = root / name / version
    write_model_folder(folder, model, d, f"# {name} {version}\n")
    return folder


def _rewrite_card(folder: Path, change) -> None:
    path = folder / "model.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_card_round_trip_and_ref(tmp_path):
    folder = _make_folder(tmp_path / "src")
    card = ModelCard.load(folder)
    assert card.ref == "toy-cxr:1.0.0" and card.task == "classification"
    assert card.architecture["params"]["hidden"] == 16
    card.verify()  # hashes match
    again = ModelCard.from_dict(card.to_dict(), folder)
    assert again == card
    assert card.superseded_by is None and "superseded_by" not in card.to_dict()
    old = ModelCard.from_dict(dict(card.to_dict(), superseded_by="toy-cxr-2"), folder)
    assert old.superseded_by == "toy-cxr-2"
    assert ModelCard.from_dict(old.to_dict(), folder) == old


def test_modified_weights_are_refused(tmp_path):
    folder = _make_folder(tmp_path / "src")
    wpath = folder / "weights.safetensors"
    data = bytearray(wpath.read_bytes())
    data[-1] ^= 0x01  # one bit in the last tensor's data
    wpath.write_bytes(bytes(data))
    card = ModelCard.load(folder)
    with pytest.raises(ModelError, match="does not match the card's sha256"):
        card.verify()
    with pytest.raises(ModelError, match="sha256"):
        load_model(card)
    reg = ModelRegistry(builtin_dir=tmp_path / "none", user_dir=tmp_path / "user")
    with pytest.raises(ModelError, match="sha256"):
        reg.import_folder(folder)
    assert not (tmp_path / "user" / "toy-cxr" / "1.0.0").exists()


@pytest.mark.parametrize("change, message", [
    (lambda d: d["architecture"].update(name="resnet_from_somewhere"), "unknown architecture"),
    (lambda d: d["architecture"]["params"].update(_target_="os.system"), "unknown parameter"),
    (lambda d: d["architecture"]["params"].update(hidden="torch.nn.Linear"),
     "'hidden' must be an integer"),
    (lambda d: d["architecture"]["params"].update(conv_channels=[4, {"x": 1}]),
     "list of integers"),
    (lambda d: d["architecture"].update(target="monai.networks.nets.UNet"), "unknown field"),
    (lambda d: d.update(labels=["normal", "pneumonia", "covid"]),
     "gives 2 outputs but the card lists 3 labels"),
    (lambda d: d.update(task="detection"), "task must be one of"),
    (lambda d: d.update(version="v1"), "version must look like 1.0.0"),
    (lambda d: d["weights"].update(file="../../etc/passwd.pt"), "plain file name"),
    (lambda d: d["input"].update(intensity={"type": "zscore"}), "intensity.type"),
    (lambda d: d.update(superseded_by=["ct-trunk-organs"]), "superseded_by must be a model name"),
])
def test_bad_cards_are_refused_with_a_clear_message(tmp_path, change, message):
    folder = _make_folder(tmp_path / "src")
    _rewrite_card(folder, change)
    with pytest.raises(ModelError, match=message) as info:
        ModelCard.load(folder)
    assert str(folder) in str(info.value)  # the message says which folder
    reg = ModelRegistry(builtin_dir=tmp_path / "none", user_dir=tmp_path / "user")
    with pytest.raises(ModelError):
        reg.import_folder(folder)


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path):
    folder = _make_folder(tmp_path / "src")
    # a valid card whose architecture (hidden 32) differs from the weights' (hidden 16)
    _rewrite_card(folder, lambda d: d["architecture"]["params"].update(hidden=32))
    reg = ModelRegistry(builtin_dir=tmp_path / "none", user_dir=tmp_path / "user")
    with pytest.raises(ModelError, match="do not fit architecture 'small_cnn'"):
        reg.import_folder(folder)


def test_segmentation_labels_must_start_with_background():
    d = _card(task="segmentation", labels=["liver", "spleen"],
              input={"dims": 2, "channels": 1, "spacing": [2.0, 2.0], "patch": [32, 32],
                     "intensity": {"type": "ct_window", "center": 40, "width": 400}},
              architecture={"name": "monai_unet", "params": {"out_channels": 2}})
    with pytest.raises(ModelError, match="start with 'background'"):
        ModelCard.from_dict(d)
    d["labels"] = ["background", "liver"]
    assert ModelCard.from_dict(d).input["spacing"] == [2.0, 2.0]


def test_import_copies_into_user_dir_and_never_overwrites(tmp_path):
    src = _make_folder(tmp_path / "src")
    user = tmp_path / "user"
    reg = ModelRegistry(builtin_dir=tmp_path / "none", user_dir=user)
    card = reg.import_folder(src)
    assert card.folder == user / "toy-cxr" / "1.0.0"
    assert sorted(p.name for p in card.folder.iterdir()) == [
        "README.md", "model.json", "weights.safetensors"]
    card.verify()
    assert not [p for p in (user / "toy-cxr").iterdir() if p.name.startswith(".")]
    before = (card.folder / "weights.safetensors").read_bytes()
    other = _make_folder(tmp_path / "src2", seed=1)  # same name:version, other weights
    with pytest.raises(ModelError, match="already exists"):
        reg.import_folder(other)
    assert (card.folder / "weights.safetensors").read_bytes() == before


def test_import_refuses_a_version_that_exists_as_builtin(tmp_path):
    builtin = tmp_path / "builtin"
    _make_folder(builtin)
    src = _make_folder(tmp_path / "src", seed=3)
    reg = ModelRegistry(builtin_dir=builtin, user_dir=tmp_path / "user")
    with pytest.raises(ModelError, match="already exists"):
        reg.import_folder(src)


def test_list_shows_builtin_and_user_models_and_get_takes_highest_version(tmp_path):
    user = tmp_path / "user"
    reg = ModelRegistry(builtin_dir=BUILTIN, user_dir=user)
    builtin_refs = {c.ref for c in reg.list()}
    assert any(r.startswith("pneumonia-cxr:") for r in builtin_refs)
    for version in ("1.0.0", "1.10.0", "1.2.0"):
        reg.import_folder(_make_folder(tmp_path / "src", version=version))
    refs = [c.ref for c in reg.list()]
    assert builtin_refs <= set(refs)
    assert [r for r in refs if r.startswith("toy-cxr:")] == [
        "toy-cxr:1.0.0", "toy-cxr:1.2.0", "toy-cxr:1.10.0"]
    assert reg.get("toy-cxr").version == "1.10.0"  # numeric, not string order
    assert reg.get("toy-cxr:1.2.0").version == "1.2.0"
    assert not reg.is_builtin(reg.get("toy-cxr")) and reg.is_builtin(reg.get("pneumonia-cxr"))
    with pytest.raises(ModelError, match="no version 9.9.9"):
        reg.get("toy-cxr:9.9.9")
    with pytest.raises(ModelError, match="no model named 'nope'"):
        reg.get("nope")


def test_list_skips_a_broken_folder_and_reports_it(tmp_path):
    user = tmp_path / "user"
    folder = _make_folder(user)
    _rewrite_card(folder, lambda d: d.update(task="detection"))
    reg = ModelRegistry(builtin_dir=tmp_path / "none", user_dir=user)
    assert reg.list() == []
    assert len(reg.problems) == 1 and "task must be one of" in reg.problems[0][1]


def test_loaded_model_is_in_eval_mode_and_gives_one_output_per_label(tmp_path):
    import torch

    card = ModelCard.load(_make_folder(tmp_path / "src"))
    model = load_model(card)
    assert not model.training
    with torch.no_grad():
        out = model(torch.zeros(3, 1, 28, 28))
    assert tuple(out.shape) == (3, len(card.labels))


def test_cards_and_registry_do_not_import_torch():
    code = ("import sys; import medviewer.ai.cards, medviewer.ai.registry, "
            "medviewer.ai.architectures as a; "
            "from medviewer.ai.registry import ModelRegistry; "
            "cards = ModelRegistry().list(); assert cards, 'no built-in models'; "
            "a.validate_params('monai_unet', {}); "
            "bad = [m for m in ('torch', 'monai', 'safetensors') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
