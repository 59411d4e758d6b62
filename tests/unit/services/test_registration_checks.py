"""services.registration.check_pair: a pair that cannot be registered is refused in one
sentence before any work starts (the registration dialog shows it as it is)."""
from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.services import registration as R
from medviewer.services.studies import load, scan


@pytest.fixture(scope="module")
def mr(shared_data):
    path = shared_data / "totalseg" / "tests" / "reference_files" / "example_mr_sm.nii.gz"
    return load(scan([str(path)]).series[0])


def test_a_pair_that_cannot_be_registered_is_refused_in_one_sentence(mr):
    other = Volume(np.array(mr.array), mr.geometry, modality=mr.modality)
    R.check_pair(mr, other)  # two greyscale 3D series: fine
    with pytest.raises(R.RegistrationError, match="the same") as same:
        R.check_pair(mr, mr)
    rgb = Volume(np.zeros((8, 16, 16, 3), np.uint8), Geometry(shape=(8, 16, 16)))
    with pytest.raises(R.RegistrationError, match="moving series is a colour image"):
        R.check_pair(mr, rgb)
    thin = Volume(np.zeros((1, 64, 64), np.int16), Geometry(shape=(1, 64, 64)))
    with pytest.raises(R.RegistrationError, match="fixed series .* too thin"):
        R.check_pair(thin, mr)
    assert str(same.value).count(".") <= 1 and "\n" not in str(same.value)
