"""MedViewer: a tri-planar medical image viewer with an AI correction loop."""
__version__ = "0.1.0"
