"""Shared real-data paths and a reference geometry built straight from DICOM tags (core tests)."""
from pathlib import Path

import numpy as np
import pydicom

from medviewer.core.geometry import Geometry

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
CHEST_CT = DATA / "tcia_cmb_crc_ct_chest"
OBLIQUE_ALL = DATA / "dcm_qa_toshiba_oblique" / "In" / "Galan" / "10006_DTI_ALL_20d"
OBLIQUE_AX = DATA / "dcm_qa_toshiba_oblique" / "In" / "Galan" / "8006_DTI_AX_30d"


def geometry_from_folder(folder: Path) -> Geometry:
    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    iop = np.asarray(heads[0].ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = np.asarray([h.ImagePositionPatient for h in heads], dtype=float)
    order = np.argsort(pos @ normal)
    pos = pos[order]
    dz = float(np.median(np.diff(pos @ normal)))
    ps = [float(v) for v in heads[0].PixelSpacing]
    direction = np.column_stack([row, col, normal])
    return Geometry(shape=(len(heads), int(heads[0].Rows), int(heads[0].Columns)),
                    spacing=(ps[1], ps[0], dz), origin=tuple(pos[0]),
                    direction=tuple(direction.ravel()))


def sitk_oblique(volume, frame, plane, depths) -> np.ndarray:
    """SimpleITK's linear resample (float32, -5000 outside) of ``plane``'s oblique pictures of
    ``frame`` at ``depths`` (mm along its normal, evenly spaced): (len(depths), rows, cols)."""
    import SimpleITK as sitk

    g = volume.geometry
    img = sitk.GetImageFromArray(volume.array)
    img.SetSpacing(g.spacing)
    img.SetOrigin(g.origin)
    img.SetDirection(g.direction)
    a = frame.axes(plane)
    step = float(depths[1] - depths[0]) if len(depths) > 1 else 1.0
    origin = frame.lps_of(plane, 0.0, 0.0, float(depths[0]))
    nr, nc = frame.shape(plane)
    direction = np.column_stack([a[:, 1], a[:, 0], a[:, 2]])  # ITK x = our columns
    out = sitk.Resample(img, (nc, nr, len(depths)), sitk.Transform(), sitk.sitkLinear, tuple(origin),
                        (frame.spacing, frame.spacing, step), tuple(direction.ravel()), -5000.0,
                        sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)
