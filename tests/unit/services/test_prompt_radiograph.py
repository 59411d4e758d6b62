"""Prompts on a radiograph without pixel spacing (pydicom-data RG1_UNCI.dcm: a 1955x1841 PA
chest radiograph, no PixelSpacing/ImagerPixelSpacing, read by the app's reader): the engines
work on a spacing estimated from the image size instead of 1 mm per pixel, say so, and leave
images with a real spacing alone.

The reference for "a plausible part of the lung field" was read off the image by eye (see
/tmp/shots_i11 in the change's report): the right lung field (left of the image, a PA view)
lies within rows 250-1400 and columns 230-800; the mediastinum is the bright band of columns
850-1000. With 1 mm assumed, one click gave a 2380-pixel patch around a vessel (0.4% of that
box); the assertions ask for at least 10% of the box, all of it inside the right hemithorax,
and darker (air) than the mediastinum."""
from pathlib import Path

import numpy as np
import pydicom
import pytest

import data_store
from medviewer.services import interactive
from medviewer.services.interactive import engine_spacing, load_volume
from medviewer.services.prompt_session import PromptEntry, PromptSession, run_snapshot

RG1 = Path(data_store.__file__).parent / "data" / "RG1_UNCI.dcm"
CLICK = (0, 560, 500)  # upper zone of the right lung field, between two ribs
LUNG_BOX = (slice(250, 1400), slice(230, 800))  # rows, columns (by eye)
MEDIASTINUM = (slice(300, 1000), slice(850, 1000))


@pytest.fixture(scope="module")
def radiograph():
    vol = load_volume(RG1)
    assert vol.meta.get("spacing_unknown") and vol.geometry.spacing[:2] == (1.0, 1.0)
    return vol


def _click(vol, engine="learned"):
    s = PromptSession(engine)
    s.add(PromptEntry("point", (CLICK,)))
    return run_snapshot(vol, s.snapshot())[0]


def test_the_spacing_is_estimated_from_the_image_size_only_for_such_images(radiograph,
                                                                            shared_data):
    used = engine_spacing(radiograph)
    assert used.zyx[1:] == pytest.approx((400 / 1955, 400 / 1955))  # about 0.20 mm
    assert "pixel spacing unknown" in used.note and "0.20 mm" in used.note
    ct = load_volume(shared_data / "totalseg/tests/reference_files/example_ct_sm.nii.gz")
    sx, sy, sz = ct.geometry.spacing
    assert engine_spacing(ct) == interactive.EngineSpacing((sz, sy, sx))  # CT: its own


def test_a_click_in_the_lung_field_gives_a_plausible_part_of_it(radiograph):
    mask = _click(radiograph)
    arr = np.asarray(radiograph.array[0], np.float64)
    box_area = (LUNG_BOX[0].stop - LUNG_BOX[0].start) * (LUNG_BOX[1].stop - LUNG_BOX[1].start)
    print(f"\nRG1 lung click: {int(mask.sum())} pixels, "
          f"{100 * mask.sum() / box_area:.1f}% of the right lung field's box")
    assert mask[CLICK[1:]]
    assert mask.sum() >= 0.10 * box_area  # was 0.4% with 1 mm per pixel
    assert mask[LUNG_BOX].sum() >= 0.95 * mask.sum()  # inside the right hemithorax
    assert not mask[:, 850:].any()  # nothing in the mediastinum or the left lung
    # MONOCHROME1: air (lung) has the high values, shown dark
    assert np.median(arr[mask]) > np.median(arr[MEDIASTINUM])
    # the result is the engine's run at the estimated spacing, and says so in the CLI output
    res = interactive.simulate(radiograph, mask[None], max_clicks=1)
    assert res.to_dict()["warnings"] == [engine_spacing(radiograph).note]


def test_a_radiograph_that_has_a_pixel_spacing_keeps_it(tmp_path, radiograph):
    """The same pixels with ImagerPixelSpacing 0.2 mm: the reader's spacing is used as it is
    (no estimate, no note), and the click gives what the estimate (0.205 mm) gave, nearly."""
    ds = pydicom.dcmread(RG1)
    del ds.PixelSpacing  # the file's '0\\0'
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.save_as(tmp_path / "rg1_spaced.dcm")
    vol = load_volume(tmp_path / "rg1_spaced.dcm")
    assert not vol.meta.get("spacing_unknown")
    used = engine_spacing(vol)
    assert used.zyx[1:] == pytest.approx((0.2, 0.2)) and used.note == ""
    spaced, estimated = _click(vol), _click(radiograph)
    inter = np.logical_and(spaced, estimated).sum()
    assert 2 * inter / (spaced.sum() + estimated.sum()) > 0.8


def test_the_image_snapshot_keeps_the_unknown_spacing_for_fine_tuning(tmp_path, radiograph):
    """Prompt records are fine-tuned from the store's image snapshot: it remembers that the
    spacing was unknown, so training windows use the same estimate as the prompts did."""
    from medviewer.services.prompt_finetune import _plane_spacing
    from medviewer.storage.store import LabelStore

    store = LabelStore(tmp_path / "ws")
    h = store.add_image(radiograph, "a" * 64)
    loaded = store.load_image(h)
    assert loaded.meta.get("spacing_unknown")
    assert engine_spacing(loaded) == engine_spacing(radiograph)
    assert _plane_spacing(loaded, "axial") == pytest.approx((400 / 1955, 400 / 1955))
    store.close()
