"""Starter-model trainers (run as ``python -m medviewer.ai.starters``); imported only to train."""
