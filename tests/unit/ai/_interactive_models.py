"""A tiny promptable model folder (task "interactive") trained for a few steps on real CT
structures, and prompt records of real TotalSegmentator masks stored through the real store."""
from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
TS = DATA / "totalseg" / "tests" / "reference_files"
CT = TS / "example_ct_sm.nii.gz"
SEG = TS / "example_seg.nii.gz"
NAME = "interactive-promptable"


def read_zyx(path) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(nib.load(str(path)).dataobj).T)


def ct_cases(values=(5, 2, 3)):
    """One Case of the CT with a few of its TotalSegmentator structures."""
    from medviewer.ai.interactive.train_data import Case

    seg = read_zyx(SEG)
    img = read_zyx(CT).astype(np.float32)
    return [Case("ct_sm", img, (3.0, 3.0, 3.0), {str(v): seg == v for v in values})]


def write_tiny_model(models_dir, version: str = "1.0.0", steps: int = 3, seed: int = 0,
                     cases=None, lr: float = 2e-3, batch_size: int = 4):
    """Train ``steps`` steps and write ``<models_dir>/interactive-promptable/<version>``."""
    from medviewer.ai.interactive.train import train
    from medviewer.ai.interactive.encoding import CHANNELS, GRID
    from medviewer.ai.interactive.train import ARCH, PARAMS
    from medviewer.ai.starters.common import write_model_folder

    result = train(None, seed=seed, steps=steps, batch_size=batch_size, lr=lr, threads=1,
                   cases=cases if cases is not None else ct_cases(), log=lambda m: None)
    card = {"name": NAME, "version": version, "task": "interactive",
            "description": "Tiny promptable test model.", "labels": ["background", "object"],
            "input": {"dims": 2, "channels": len(CHANNELS), "size": [GRID, GRID],
                      "intensity": {"type": "percentile", "lo": 0.5, "hi": 99.5}},
            "architecture": {"name": ARCH, "params": PARAMS}, "metrics": {},
            "training": {"steps": steps, "seed": seed}, "license": "test",
            "domain": {"modalities": ["CT"], "image_type": "any", "body_region": "any",
                       "dims": 2},
            "limits": ["a test model"]}
    folder = Path(models_dir) / NAME / version
    return write_model_folder(folder, result["model"], card, "# tiny test model\n")


def store_ct_records(store, slices, value=5, plane="axial"):
    """Prompt records of structure ``value`` on the given slices of the CT, stored through
    :func:`medviewer.services.prompt_records.store_prompt_record` with a click at the mask's
    deepest point; returns their ids."""
    from scipy import ndimage

    from medviewer.io.volume_files import read_volume_file
    from medviewer.services.prompt_records import plane_section, store_prompt_record

    vol = read_volume_file(CT)
    mask3 = read_zyx(SEG) == value
    ids = []
    for k in slices:
        m = plane_section(mask3, plane, k)
        dist = ndimage.distance_transform_edt(m)
        y, x = np.unravel_index(int(np.argmax(dist)), m.shape)
        pt = [k, int(y), int(x), True] if plane == "axial" else [int(y), k, int(x), True]
        rec = {"engine": "learned", "plane": plane, "slice": int(k),
               "prompts": {"points": [pt], "boxes": [], "scribbles": []}}
        ids.append(store_prompt_record(store, None, rec, m, volume=vol))
    return ids


def body_masks() -> np.ndarray:
    """The patient's body on every CT slice (tissue above -300 HU, opened, holes filled)."""
    from scipy import ndimage

    img = read_zyx(CT)
    return np.stack([ndimage.binary_fill_holes(ndimage.binary_opening(s > -300, iterations=2))
                     for s in img])


def body_cases():
    from medviewer.ai.interactive.train_data import Case

    return [Case("ct_sm_body", read_zyx(CT).astype(np.float32), (3.0, 3.0, 3.0),
                 {"body": body_masks()})]
