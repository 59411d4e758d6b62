"""A model run on PACS series, for batch use: retrieve each series into the cache, segment it
through ``medviewer predict``'s own code path (:mod:`.case_predict`), write the label map and
its sidecar, and send the result back as a DICOM SEG of the same study. Qt-free; the command
line (``medviewer pacs predict``) reports."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .pacs import PacsError, PacsServer, retrieve, send_seg

__all__ = ["PacsPrediction", "predict_series"]


@dataclass
class PacsPrediction:
    series_uid: str
    label_map: str  # the NIfTI written
    seg: Optional[str]  # the DICOM SEG sent (None without sending)
    labels: dict  # label name -> voxels
    timings: dict


def predict_series(server: PacsServer, study_uid: str, series_uid: str, card, lane, out,
                   *, cache=None, z: Optional[int] = None, send: bool = True,
                   force: bool = False, reporter=None) -> PacsPrediction:
    """Retrieve one series, segment it with ``card`` on ``lane``, write
    ``out/<SeriesInstanceUID>.nii.gz`` (+ sidecar) and, with ``send``, send the labels back
    as a DICOM SEG. Raises PacsError (retrieve, send), DomainMismatch, ValueError."""
    import numpy as np

    from .case_predict import segment_case, write_segmentation
    from .cases import find_cases

    out = Path(out)
    res = retrieve(server, study_uid, series_uid, out=cache if cache is not None else out / "images",
                   reporter=reporter)
    folders = sorted({str(Path(p).parent) for p in res.paths})
    cases, _ = find_cases(folders)
    cases = [c for c in cases if c.entry is not None and c.entry.series_uid == series_uid] or cases
    if len(cases) != 1:
        raise PacsError(f"series {series_uid} gave {len(cases)} image series after retrieval, "
                        f"not one")
    pred = segment_case(cases[0], card, lane, z=z, force=force, reporter=reporter)
    target = out / f"{series_uid}.nii.gz"
    write_segmentation(pred, target, f"pacs:{series_uid}", anonymise=True)
    run = pred.run
    counts = np.bincount(np.asarray(run.labels).reshape(-1), minlength=len(run.label_names))
    found = {n: int(counts[i]) for i, n in enumerate(run.label_names) if i > 0 and counts[i]}
    seg = None
    if send:
        if not found:
            raise PacsError(f"{card.ref} found nothing in series {series_uid}: no SEG to send")
        table = {"labels": [{"value": i, "name": n} for i, n in enumerate(run.label_names)
                            if i > 0]}
        seg = str(send_seg(server, run.labels, table, pred.volume, reporter=reporter,
                           folder=out / series_uid))
    return PacsPrediction(series_uid, str(target), seg, found, dict(pred.timings))
