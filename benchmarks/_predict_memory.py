"""Child process of `benchmarks/inference.py`: the ``predict`` code path on the chest CT tiled
to N slices in memory (nothing written but the label map, to a temporary folder); prints one
JSON line with the loaded array's bytes and this process's peak RSS.
Usage: python benchmarks/_predict_memory.py N THREADS [MODEL]"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, peak_rss_bytes, rss_bytes  # noqa: E402


def main() -> int:
    n, threads = int(sys.argv[1]), int(sys.argv[2])
    name = sys.argv[3] if len(sys.argv) > 3 else "ct-trunk-organs"
    import numpy as np

    from medviewer.cli.predict import _label_counts
    from medviewer.core.volume import Volume
    from medviewer.io.load import open_first
    from medviewer.services.ai_runs import InferenceContext, ModelLane, segment_volume
    from medviewer.services.annotations import write_label_file
    from medviewer.services.models import ModelCatalog

    lane = ModelLane("cpu", strict=True, threads=threads)
    card = ModelCatalog().get(name)
    lane.model(card)  # libraries and the model first: what predict has before the volume
    base = rss_bytes()
    src = open_first([CHEST_CT])
    reps = -(-n // src.shape[0])
    arr = np.tile(src.array, (reps, 1, 1))[:n] if reps > 1 else src.array[:n]
    geom = src.geometry
    geom = type(geom)(shape=arr.shape, spacing=geom.spacing, origin=geom.origin,
                      direction=geom.direction)
    vol = Volume(arr, geom, modality="CT", units="HU")
    del src
    run = segment_volume(InferenceContext(lane), card, vol, keep_entropy=False, force=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_label_file(run.labels, vol.geometry, Path(tmp) / "labels.nii.gz",
                         {"labels": []})
    counts = _label_counts(run.labels, len(run.label_names))
    peak = peak_rss_bytes()
    print(json.dumps({"slices": n, "array_nbytes": int(arr.nbytes), "dtype": str(arr.dtype),
                      "rss_before_volume": base, "peak_rss": peak,
                      "labelled_voxels": int(sum(counts[1:])),
                      "uncertainty": run.uncertainty, "precision": run.precision}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
