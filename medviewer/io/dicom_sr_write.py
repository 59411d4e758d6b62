"""Writing findings as a DICOM Comprehensive 3D SR (TID 1500 Measurement Report), highdicom.

One Volumetric ROI measurement group (TID 1411) per finding: tracking identifier "Finding N
(label name #k)" with a UID, the segment of the DICOM SEG that holds its label (the SEG written
by :mod:`.dicom_seg_write`: segment descriptions say "MedViewer label value N"), and the
measurements Volume (ml), Long axis and Short axis (mm) and, where the image was measured, Mean and
Standard Deviation in the image's units (HU for CT). Evidence: the SEG and the source images.
The diameters' end points are not in the SR (TID 1411 allows no coordinates on its
measurements); the JSON/CSV exports hold them.

Anonymised (the default), the source headers are de-identified copies (as for the SEG), the
SR is scrubbed once built, and an SR in which a source name, ID or birth date survives is not
written.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from medviewer.core.findings import Finding
from medviewer.core.volume import Volume

from .dicom_seg_write import VALUE_PREFIX, _deidentify, _source_datasets, save_derived

__all__ = ["write_findings_sr", "read_findings_sr"]


def _segment_numbers(seg) -> dict:
    """{label value: segment number} from a SEG written by MedViewer."""
    out = {}
    for item in seg.SegmentSequence:
        desc = str(item.get("SegmentDescription", "") or "")
        if desc.startswith(VALUE_PREFIX):
            out[int(desc[len(VALUE_PREFIX):])] = int(item.SegmentNumber)
    return out


def _units(units: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if units.upper() == "HU":
        return codes.UCUM.HounsfieldUnit
    return hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")


def _axis(name, d):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.sr.Measurement(name=name, value=0.0 if d is None else float(d.length_mm),
                             unit=codes.UCUM.Millimeter)


def _segment(f: Finding, seg, numbers: dict, sources: list, multiframe: bool):
    """The finding's segment of ``seg`` with the source images of the slices it spans
    (built here: highdicom's ``from_segmentation`` fails on a SEG of one segment, whose
    segment identification is shared by all frames)."""
    import highdicom as hd

    if f.label not in numbers:
        raise ValueError(f"the DICOM SEG has no segment for label {f.label} ({f.name})")
    images = sources[:1] if multiframe else sources[f.slices[0]:f.slices[1] + 1]
    refs = [hd.sr.SourceImageForSegmentation(referenced_sop_class_uid=str(ds.SOPClassUID),
                                             referenced_sop_instance_uid=str(ds.SOPInstanceUID))
            for ds in images]
    return hd.sr.ReferencedSegment(sop_class_uid=str(seg.SOPClassUID),
                                   sop_instance_uid=str(seg.SOPInstanceUID),
                                   segment_number=numbers[f.label], source_images=refs)


def _group(f: Finding, segment):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(),
                                        identifier=f"Finding {f.number} ({f.name} #{f.component})"[:64])
    ms = [hd.sr.Measurement(name=codes.SCT.Volume, value=float(f.volume_ml),
                            unit=hd.sr.CodedConcept(value="ml", scheme_designator="UCUM",
                                                    meaning="milliliter")),
          _axis(codes.SCT.LongAxis, f.long_axis),
          _axis(codes.SCT.ShortAxis, f.short_axis)]
    if f.mean is not None:
        unit = _units(f.units)
        ms.append(hd.sr.Measurement(name=codes.SCT.Mean, value=float(f.mean), unit=unit))
        ms.append(hd.sr.Measurement(name=codes.DCM.StandardDeviation, value=float(f.sd),
                                    unit=unit))
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_segment=segment,
        finding_type=codes.DCM.Finding, measurements=ms)


def write_findings_sr(findings: Sequence[Finding], volume: Volume, seg_path, path, *,
                      anonymise: bool = True, pseudonym_key: bytes | None = None) -> Path:
    """Write the SR for ``findings`` on ``volume`` referencing the SEG at ``seg_path``
    (written from the same labels) to ``path`` atomically. ValueError on sources that are
    not DICOM, a SEG without a finding's label, or a surviving identifying value."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    if not findings:
        raise ValueError("there are no findings to report")
    seg = pydicom.dcmread(str(seg_path))
    numbers = _segment_numbers(seg)
    datasets, multiframe = _source_datasets(volume)
    sources, leaks, alias = datasets, [], None
    if anonymise:
        sources, alias, leaks = _deidentify(datasets, pseudonym_key)
    groups = [_group(f, _segment(f, seg, numbers, datasets, multiframe)) for f in findings]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="MedViewer"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion
        if (volume.modality or "").upper() == "CT" else codes.SCT.ImagingProcedure,
        imaging_measurements=groups)
    series_number = min(int(datasets[0].get("SeriesNumber", 0) or 0) + 2000, 2 ** 31 - 1)
    try:
        with warnings.catch_warnings():  # highdicom warns with patient names in the text
            warnings.simplefilter("ignore")
            sr = hd.sr.Comprehensive3DSR(
                evidence=[seg, *sources], content=report, series_instance_uid=hd.UID(),
                series_number=int(series_number), sop_instance_uid=hd.UID(), instance_number=1,
                manufacturer="MedViewer", series_description="MedViewer findings")
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"cannot build the DICOM SR: {str(exc).splitlines()[0][:200]}") from None
    return save_derived(sr, path, "SR", alias if anonymise else None, leaks)


def read_findings_sr(path) -> list:
    """[{tracking id, tracking uid, segment number, source image UIDs, measurements:
    {name: (value, unit)}}] from an SR written by :func:`write_findings_sr`."""
    import highdicom as hd
    import pydicom

    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(str(path)))
    groups = sr.content.get_volumetric_roi_measurement_groups()
    out = []
    for g in groups:
        ms = {m.name.meaning: (float(m.value), m.unit.value) for m in g.get_measurements()}
        refs = [r for item in (g.referenced_segment or [])
                for r in item.get("ReferencedSOPSequence", [])]
        numbers = [int(r.ReferencedSegmentNumber) for r in refs if "ReferencedSegmentNumber" in r]
        images = [str(r.ReferencedSOPInstanceUID) for r in refs
                  if "ReferencedSegmentNumber" not in r]
        out.append({"tracking_id": g.tracking_identifier,
                    "tracking_uid": g.tracking_uid,
                    "segment_number": numbers[0] if numbers else None, "source_images": images,
                    "measurements": ms})
    return out
