"""Only the package list lives here; everything else is in pyproject.toml.

pyproject.toml cannot combine package discovery (``packages.find``) with extra packages, and the
wheel needs two that have no folder under ``medviewer/``: the repo's top-level ``models/`` and
``resources/`` are shipped as ``medviewer/builtin_models`` and ``medviewer/resources``
(``[tool.setuptools.package-dir]`` and ``[tool.setuptools.package-data]`` in pyproject.toml).
The code finds them with ``importlib.resources`` and falls back to the checkout's folders when
run from the source tree or an editable install.
"""
from setuptools import find_namespace_packages, setup

DATA_PACKAGES = ["medviewer.builtin_models", "medviewer.resources"]

setup(packages=find_namespace_packages(include=["medviewer", "medviewer.*"],
                                       exclude=["*.__pycache__"]) + DATA_PACKAGES)
