"""Readers and writers: DICOM discovery/sorting/decoding, NIfTI/NRRD/MHA/MGZ (no Qt)."""
