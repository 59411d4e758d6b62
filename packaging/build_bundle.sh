#!/usr/bin/env bash
# Build the standalone Linux app folder dist/medviewer/ (PyInstaller, onedir) from this checkout.
# Usage: bash packaging/build_bundle.sh
#   PYTHON  a Python that has MedViewer's dependencies (with the `ai` extra) and PyInstaller;
#           default .venv/bin/python (packaging/install.sh, then `.venv/bin/pip install
#           "pyinstaller>=6"` or `pip install -e ".[ai,bundle]"`).
# Work files go to build/pyinstaller/, the app to dist/medviewer/ (both git-ignored).
# Then: python3 packaging/smoke_bundle.py
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
echo "PyInstaller $("$PY" -m PyInstaller --version) with $("$PY" -c 'import sys; print(sys.executable)')"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/medviewer.spec
echo "built dist/medviewer in $(( $(date +%s) - start )) s; size $(du -sh dist/medviewer | cut -f1)"
