"""Annotation UI: label maps, paint tools, label and case panels, the annotation controller."""
