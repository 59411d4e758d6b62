"""DICOM Segmentation import/export: the public entry points (reading and writing live apart).

- ``write_seg(labels, table_dict, volume, path, *, series_description, manufacturer,
  algorithm=None)`` -> Path (BINARY SEG referencing the volume's DICOM source images).
- ``read_seg(path, geometry=None, source_paths=None)`` -> (labels, table_dict, warnings).
- ``read_seg_segments(path, geometry=None, source_paths=None)`` -> {segment number: mask}.
- ``seg_geometry(path)`` -> the SEG's own grid; ``seg_referenced_series(path)`` -> series UIDs.
"""
from __future__ import annotations

from .dicom_seg_read import (SEG_SOP_CLASSES, read_seg, read_seg_segments, seg_geometry,
                             seg_referenced_series)
from .dicom_seg_write import write_seg

__all__ = ["write_seg", "read_seg", "read_seg_segments", "seg_geometry", "seg_referenced_series",
           "SEG_SOP_CLASSES"]
