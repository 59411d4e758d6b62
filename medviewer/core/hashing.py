"""Content hash of an image (voxels + geometry), the key that ties annotations to their image."""
from __future__ import annotations

import hashlib
import json

import numpy as np

_CHUNK = 16 * 2**20


def image_hash(volume) -> str:
    """sha256 hex of the voxel bytes (C order, little-endian), shape, dtype and geometry.

    Stable across loads of the same data; any change of a voxel value, the dtype or the
    geometry (spacing, origin, direction, slice positions) gives another hash."""
    arr = np.asarray(volume.array)
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    h = hashlib.sha256()
    header = {"shape": list(arr.shape), "dtype": dt.str,
              "geometry": volume.geometry.to_dict()}
    h.update(json.dumps(header, sort_keys=True).encode())
    flat = np.ascontiguousarray(arr, dtype=dt).reshape(-1)
    step = max(1, _CHUNK // max(flat.itemsize, 1))
    for i in range(0, flat.size, step):
        h.update(memoryview(flat[i:i + step]).cast("B"))
    return h.hexdigest()
