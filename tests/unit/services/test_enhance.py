"""Enhancement (services.enhance) on real images: the shared chest CT and the TotalSegmentator
MR, with synthetic Gaussian noise of a known level added to real slices. Denoisers bring the
slice closer to the clean one (PSNR and SSIM up), the noise estimate tracks the noise, CLAHE
raises local contrast, unsharp masking sharpens; a volume is filtered into a new derived series
and the original is untouched; settings are checked; cancel stops between slices."""
from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.jobs import Cancelled, CancelToken, Reporter
from medviewer.services import enhance as E
from medviewer.services.studies import load, scan


def _load(path):
    return load(scan([str(path)]).series[0])


@pytest.fixture(scope="module")
def ct(chest_ct_dir):
    return _load(chest_ct_dir)


@pytest.fixture(scope="module")
def mr(shared_data):
    return _load(shared_data / "totalseg" / "tests" / "reference_files" / "example_mr_sm.nii.gz")


def _noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return clean + rng.normal(0.0, sigma, clean.shape).astype(np.float32)


def _range(a) -> float:
    return float(np.percentile(a, 99.5) - np.percentile(a, 0.5))


def test_the_noise_estimate_follows_the_noise_added(ct):
    clean = ct.array[50].astype(np.float32)
    base = E.noise_sigma(clean)  # the scanner's own noise
    for sigma in (20.0, 40.0, 80.0):
        got = E.noise_sigma(_noisy(clean, sigma))
        assert got == pytest.approx((base ** 2 + sigma ** 2) ** 0.5, rel=0.15)
    with pytest.raises(E.EnhanceError):
        E.noise_sigma(np.zeros((2, 2)))


@pytest.mark.parametrize("which", ["ct", "mr"])
@pytest.mark.parametrize("name", ["nlm", "bilateral", "diffusion"])
def test_denoisers_bring_a_noisy_real_slice_closer_to_the_clean_one(which, name, ct, mr):
    vol, z = (ct, 50) if which == "ct" else (mr, 10)
    clean = vol.array[z].astype(np.float32)
    r = _range(clean)
    noisy = _noisy(clean, 0.03 * r if which == "ct" else 0.05 * r)
    out = E.filter_slice(noisy, vol.geometry.spacing[:2], name)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert E.psnr(clean, out, r) > E.psnr(clean, noisy, r) + 0.5
    assert E.ssim(clean, out, r) > E.ssim(clean, noisy, r) + 0.01


def test_unsharp_sharpens_and_clahe_raises_local_contrast(ct):
    from scipy.ndimage import laplace, uniform_filter

    sl = ct.array[50].astype(np.float32)
    sp = ct.geometry.spacing[:2]
    sharp = E.filter_slice(sl, sp, "unsharp")
    assert np.var(laplace(sharp)) > 1.3 * np.var(laplace(sl))
    assert abs(float(sharp.mean()) - float(sl.mean())) < 5.0  # the same HU on average
    eq = E.filter_slice(sl, sp, "clahe")
    lo, hi = np.percentile(sl, (0.5, 99.5))
    assert eq.min() >= lo - 1 and eq.max() <= hi + 1  # still in the image's units and range
    body = sl > -500  # soft tissue: CLAHE spreads its narrow HU range locally

    def local_sd(a):
        m = uniform_filter(a, 15)
        return np.sqrt(np.maximum(uniform_filter(a * a, 15) - m * m, 0))

    clipped = np.clip(sl, lo, hi)
    assert local_sd(eq)[body].mean() > 1.5 * local_sd(clipped)[body].mean()


def test_a_volume_becomes_a_new_derived_series_and_the_original_stays(mr):
    before = mr.array.copy()
    seen = []
    out = E.enhance_volume(mr, "nlm", {"strength": 1.0}, Reporter(seen.append))
    np.testing.assert_array_equal(mr.array, before)
    assert out is not mr and out.array.dtype == mr.array.dtype and out.shape == mr.shape
    assert out.geometry == mr.geometry and out.uid == "" and out.source_paths == []
    assert not np.array_equal(out.array, mr.array)
    assert out.meta["enhancement"]["filter"] == "nlm"
    assert out.meta["enhancement"]["params"]["strength"] == 1.0
    assert "Non-local means" in out.description
    assert seen[-1].done == seen[-1].total == mr.shape[0]
    np.testing.assert_array_equal(E.preview(mr, 7, "nlm", {"strength": 1.0}), out.array[7])


def test_settings_and_inputs_are_checked(mr):
    with pytest.raises(E.EnhanceError, match="unknown filter"):
        E.filter_slice(mr.array[0], (1, 1), "wavelet")
    with pytest.raises(E.EnhanceError, match="between"):
        E.filter_slice(mr.array[0], (1, 1), "unsharp", {"amount": 50})
    with pytest.raises(E.EnhanceError, match="no setting"):
        E.filter_slice(mr.array[0], (1, 1), "unsharp", {"radius": 2})
    with pytest.raises(E.EnhanceError, match="outside"):
        E.preview(mr, 999, "nlm")
    rgb = Volume(np.zeros((1, 8, 8, 3), np.uint8), Geometry(shape=(1, 8, 8)))
    with pytest.raises(E.EnhanceError, match="colour"):
        E.enhance_volume(rgb, "nlm")
    assert E.describe("unsharp") == "Unsharp mask (sigma 1 mm, amount 0.6)"


def test_availability_and_settings_check_say_why_in_one_sentence():
    from medviewer.ai.denoise import builtin_dir

    assert all(E.unavailable(n) == "" for n in E.FILTERS if n != "learned")
    reason = E.unavailable("learned")
    assert (reason == "") == (builtin_dir() is not None)
    if reason:
        assert "not installed" in reason and reason.endswith(".")
    assert "no filter" in E.unavailable("wavelet")
    assert E.check_settings("nlm", {"strength": 1.5}) == {"strength": 1.5, "patch_mm": 4.0,
                                                           "search_mm": 10.0}
    with pytest.raises(E.EnhanceError, match="strength must be between 0.1 and 3 x noise"):
        E.check_settings("nlm", {"strength": 9})


def test_cancel_stops_between_slices(mr):
    token, done = CancelToken(), []

    def on_slice(z):
        done.append(z)
        if z == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        E.enhance_volume(mr, "bilateral", reporter=Reporter(None, token), on_slice=on_slice)
    assert done == [0, 1, 2]


@pytest.fixture(scope="module")
def denoiser_card():
    import json

    from medviewer.ai.denoise import CARD, builtin_dir

    folder = builtin_dir()
    assert folder is not None, "models/denoise-ae is missing (python -m medviewer.ai.starters denoise-ae)"
    return json.loads((folder / CARD).read_text())


@pytest.mark.slow
def test_the_learned_denoiser_reproduces_its_card_on_the_held_out_slices(denoiser_card):
    """Its card's held-out figures (benchmarks/denoise.py --write-card) come back, and it
    beats the noisy input on CT and on MR by a clear margin."""
    got = E.compare_on_held_out(filters=("learned",))
    card = denoiser_card["metrics"]["held_out_vs_classical"]["results"]
    for modality in ("CT", "MR"):
        assert got[modality]["learned"]["psnr"] == pytest.approx(
            card[modality]["learned"]["psnr"], abs=0.05)
        assert got[modality]["learned"]["psnr"] >= got[modality]["noisy"]["psnr"] + 2.0
        assert got[modality]["learned"]["ssim"] > got[modality]["noisy"]["ssim"]


def test_the_learned_denoiser_on_a_real_slice_it_never_saw(ct, denoiser_card):
    """Slice 95 of the chest CT is in the held-out fifth: noise added, the network removes
    most of it, and the card says what it was trained on and how."""
    from medviewer.ai.denoise import shipped

    clean = ct.array[95].astype(np.float32)
    r = _range(clean)
    noisy = _noisy(clean, 0.03 * r, seed=5)
    out = E.filter_slice(noisy, ct.geometry.spacing[:2], "learned")
    assert E.psnr(clean, out, r) > E.psnr(clean, noisy, r) + 2.0
    assert denoiser_card["weights"]["sha256"] and denoiser_card["training"]["held_out"]
    assert shipped().card["name"] == "denoise-ae"
