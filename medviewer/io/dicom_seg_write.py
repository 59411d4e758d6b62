"""Writing a label map as a DICOM Segmentation (BINARY) of its DICOM source series, with highdicom.

Checks before anything is written: the labels have the volume's shape, the volume comes from
DICOM files (one per slice, or one multi-frame file) with slice positions, and those positions
are where the volume's geometry puts its slices. Every label present becomes one segment
(numbered 1..n in label order) named and coloured from the table (recommended display
CIELab from the RGB colour), with a generic SCT "Tissue" category/type; the label value is
kept in Segment Description ("MedViewer label value N") so that reading restores it.

Anonymised (the default), the SEG is built from de-identified copies of the source headers
and de-identified again once built (:mod:`.dicom_deid`): the patient's name and ID become a
keyed pseudonym, identifying patient and study attributes are emptied or removed, UIDs stay
(the SEG must still reference its study, series, frame of reference and images); a SEG in
which any source name, ID or birth date survives is not written. Not anonymised, the patient
and study attributes are copied as highdicom copies them (e.g. to send it back to the PACS
the study came from, which matches a SEG to its study by patient identity too).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from medviewer.core.atomic import atomic_path
from medviewer.core.volume import Volume

from .dicom_deid import find_leaks, mark_deidentified, scrub_dataset
from .labels_io_tables import entry_for, table_entries

__all__ = ["write_seg", "VALUE_PREFIX"]

VALUE_PREFIX = "MedViewer label value "
POSITION_ATOL_MM = 0.01


def _source_datasets(volume: Volume) -> tuple:
    """Source datasets (headers only) in slice order, and whether the source is multi-frame."""
    import pydicom

    paths = [str(p) for p in (volume.source_paths or [])]
    nz = volume.shape[0]
    if not paths:
        raise ValueError("the image was not loaded from DICOM files: a DICOM SEG needs its "
                         "DICOM source images")
    unique = list(dict.fromkeys(paths))
    if len(paths) != nz and len(unique) != 1:
        raise ValueError(f"the image has {nz} slices but {len(paths)} source files")
    datasets = []
    for p in unique:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception as exc:
            raise ValueError(f"the image's source {Path(p).name} is not a readable DICOM file "
                             f"({type(exc).__name__}): a DICOM SEG needs DICOM sources") from None
        if not ds.get("SOPInstanceUID") or not ds.get("StudyInstanceUID"):
            raise ValueError(f"source {Path(p).name} has no SOP/Study Instance UID")
        _check_sop_class(ds, Path(p).name)
        datasets.append(ds)
    multiframe = len(unique) == 1 and int(datasets[0].get("NumberOfFrames", 1) or 1) > 1
    if not multiframe and len(unique) != nz:
        raise ValueError(f"the image has {nz} slices but {len(unique)} distinct source files")
    return datasets, multiframe


def _check_sop_class(ds, name: str) -> None:
    """A SEG references each source image with its SOP Class UID: take it from the file meta
    when the dataset's is missing or empty; refuse classes highdicom has no IOD for."""
    uid = str(ds.get("SOPClassUID", "") or "").strip()
    if not uid:
        meta = getattr(ds, "file_meta", None)
        uid = str(meta.get("MediaStorageSOPClassUID", "") if meta is not None else "").strip()
        if not uid:
            raise ValueError(f"source {name} has no SOP Class UID (the tag is empty and the "
                             "file meta has none): a DICOM SEG must name the class of every "
                             "image it references")
        ds.SOPClassUID = uid  # a header copy: the file on disk is untouched
    try:  # highdicom's table of classes with an IOD (private: checked again when building)
        from highdicom._standard_utils import get_sop_class_iod_map
    except ImportError:
        return
    if uid not in get_sop_class_iod_map():
        raise ValueError(f"source {name} is of SOP class {uid}, which a DICOM SEG cannot "
                         "reference (not an image storage class)")


def _deidentify(datasets: list, key) -> tuple:
    """(de-identified copies of the source headers, the pseudonym, identifying strings of the
    sources to check the result against)."""
    import copy

    from medviewer.core.deid import identity_values, patient_identity, pseudonym

    originals = set()
    for ds in datasets:
        originals.update(identity_values({k: ds.get(k, "") for k in (
            "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs",
            "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName")}))
    first = datasets[0]
    who = patient_identity({"PatientID": first.get("PatientID", ""),
                            "PatientName": first.get("PatientName", "")})
    name = pseudonym(who, key) if key else "ANONYMOUS"
    copies = []
    for ds in datasets:
        c = copy.deepcopy(ds)
        scrub_dataset(c, name)
        copies.append(c)
    return copies, name, sorted(originals, key=len, reverse=True)


def _check_positions(volume: Volume, datasets: list, multiframe: bool) -> None:
    g = volume.geometry
    if multiframe:
        ds = datasets[0]
        frames = ds.get("PerFrameFunctionalGroupsSequence") or []
        if not frames or "PlanePositionSequence" not in frames[0]:
            raise ValueError("the multi-frame source has no per-frame slice positions")
        return  # frames are matched to our slices by position inside highdicom
    for k, ds in enumerate(datasets):
        ipp = ds.get("ImagePositionPatient")
        if ipp is None or len(ipp) != 3:
            raise ValueError("the source images have no slice positions (ImagePositionPatient); "
                             "a DICOM SEG needs them")
        expected = g.index_to_lps((0.0, 0.0, float(k)))
        gap = float(np.abs(np.asarray([float(v) for v in ipp]) - expected).max())
        if gap > POSITION_ATOL_MM:
            raise ValueError(f"slice {k} of the image is {gap:.3g} mm away from its source "
                             "file's position: the geometry no longer matches the DICOM "
                             "series (was it resampled?)")
        if (int(ds.Rows), int(ds.Columns)) != tuple(g.shape[1:]):
            raise ValueError(f"source slice {k} is {ds.Rows}x{ds.Columns}, the image "
                             f"{g.shape[1]}x{g.shape[2]}")


def _spatial(volume: Volume):
    import highdicom as hd

    g = volume.geometry
    d = g.direction_matrix
    orientation = hd.PlaneOrientationSequence(
        coordinate_system="PATIENT", image_orientation=[float(v) for v in
                                                        np.concatenate([d[:, 0], d[:, 1]])])
    measures = hd.PixelMeasuresSequence(pixel_spacing=[g.spacing[1], g.spacing[0]],
                                        slice_thickness=g.spacing[2])
    origins = g.index_to_lps(np.column_stack([np.zeros(g.shape[0]), np.zeros(g.shape[0]),
                                              np.arange(g.shape[0], dtype=float)]))
    positions = [hd.PlanePositionSequence(coordinate_system="PATIENT",
                                          image_position=[float(v) for v in o])
                 for o in origins]
    return orientation, measures, positions


def _descriptions(values: list, entries: dict, algorithm):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    tissue = codes.SCT.Tissue
    if algorithm is None:
        algo_type, algo_id = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    else:
        name, version = (algorithm if isinstance(algorithm, (tuple, list))
                         else (str(algorithm), ""))
        algo_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algo_id = hd.AlgorithmIdentificationSequence(
            name=str(name), family=codes.cid7162.ArtificialIntelligence,
            version=str(version) or "unknown")
    out = []
    for number, value in enumerate(values, start=1):
        e = entry_for(entries, value)
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=e["name"][:64] or f"Label {value}",
            segmented_property_category=tissue, segmented_property_type=tissue,
            algorithm_type=algo_type, algorithm_identification=algo_id,
            display_color=hd.color.CIELabColor.from_rgb(*e["color"]))
        desc.SegmentDescription = f"{VALUE_PREFIX}{int(value)}"
        out.append(desc)
    return out


def write_seg(labels: np.ndarray, table_dict, volume: Volume, path, *,
              series_description: str = "MedViewer segmentation",
              manufacturer: str = "MedViewer", algorithm=None,
              series_number: int | None = None, anonymise: bool = True,
              pseudonym_key: bytes | None = None) -> Path:
    """Write ``labels`` (z, y, x) on ``volume`` as a BINARY DICOM SEG at ``path`` (atomic).

    ``algorithm``: None for a manual segmentation, or (name, version) of the model that made
    it. ``anonymise``: de-identify (see the module's docstring); the pseudonym is keyed by
    ``pseudonym_key`` (without one every patient is "ANONYMOUS"). Raises ValueError when the
    labels do not fit the volume, the volume has no DICOM sources with positions and SOP
    classes, or (anonymised) an identifying value would remain."""
    import highdicom as hd

    from medviewer import __version__

    labels = np.asarray(labels)
    if labels.ndim != 3 or tuple(labels.shape) != tuple(volume.shape):
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match the image "
                         f"{tuple(volume.shape)}")
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    datasets, multiframe = _source_datasets(volume)
    _check_positions(volume, datasets, multiframe)
    counts = np.bincount(labels.ravel(), minlength=1) if labels.size else np.zeros(1)
    values = [int(v) for v in np.nonzero(counts)[0] if v > 0]
    if not values:
        raise ValueError("the label map is empty: nothing to export")
    lut = np.zeros(len(counts), dtype=np.uint8 if len(values) < 256 else np.uint16)
    lut[values] = np.arange(1, len(values) + 1)
    pixels = lut[labels]  # label-map style input, segments numbered 1..n
    orientation, measures, positions = _spatial(volume)
    src0 = datasets[0]
    sources, leaks_to_check = datasets, []
    if anonymise:
        sources, alias, leaks_to_check = _deidentify(datasets, pseudonym_key)
    if series_number is None:
        series_number = min(int(src0.get("SeriesNumber", 0) or 0) + 1000, 2 ** 31 - 1)
    try:
        with warnings.catch_warnings():  # highdicom warns with patient names in the text
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=pixels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=_descriptions(values, table_entries(table_dict), algorithm),
                series_instance_uid=hd.UID(), series_number=int(series_number),
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer=manufacturer,
                manufacturer_model_name="MedViewer", software_versions=__version__,
                device_serial_number="0", series_description=series_description[:64],
                plane_orientation=orientation, pixel_measures=measures, plane_positions=positions,
                omit_empty_frames=True)
    except KeyError as exc:  # a class or attribute highdicom has no entry for
        raise ValueError(f"cannot build the DICOM SEG: the source images lack or have an "
                         f"unknown {exc.args[0] if exc.args else 'attribute'}") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"cannot build the DICOM SEG: {str(exc).splitlines()[0][:200]}") from None
    return save_derived(seg, path, "SEG", alias if anonymise else None, leaks_to_check)


def save_derived(ds, path, kind: str, alias=None, leaks=()) -> Path:
    """Save a built SEG/SR ``ds`` at ``path`` atomically. With ``alias`` (anonymised): scrub
    what highdicom copied from elsewhere, mark it de-identified, and refuse to write it when
    any of ``leaks`` (identifying strings of the sources) survives."""
    if alias is not None:
        scrub_dataset(ds, alias)
        mark_deidentified(ds)
        if find_leaks(ds, leaks):  # the values are not named: they identify
            raise ValueError(f"the anonymised DICOM {kind} still holds an identifying value of "
                             "its source; nothing was written")
    out = Path(path)
    with atomic_path(out, ".dcm") as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)
    return out
