#!/usr/bin/env bash
# Set up MedViewer in ./.venv. Usage: bash packaging/install.sh [--test] [--gpu]
#   --test  also install the test tools (pytest, pytest-qt, import-linter), dcm2niix and, for
#           the PACS tests and benchmark, Orthanc with its DICOMweb plugin and dcmtk
#   --gpu   take PyTorch's default (CUDA) build instead of the pinned CPU wheel
# On a CPU-only machine torch is pinned *in the same pip command* as the project, so that
# pip takes the CPU wheel and MONAI/captum never pull a CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=ai
gpu=0
want_test=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1; extras=ai,test ;;
    --gpu) gpu=1 ;;
    *) echo "install.sh: unknown option $a (use --test, --gpu)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || "$PY" -m venv .venv
torch_req=${MEDVIEWER_TORCH:-torch==2.13.0}
[ "$gpu" = 1 ] && torch_req=${MEDVIEWER_TORCH:-torch}
.venv/bin/python -m pip install -q --disable-pip-version-check "$torch_req" -e ".[${extras}]"
# Debian packages the tests use: dcm2niix (reference converter), Orthanc + its DICOMweb
# plugin (the PACS tests' real server) and dcmtk (getscu/movescu, the PACS benchmark's baseline)
if [ "$want_test" = 1 ]; then
  missing=""
  command -v dcm2niix >/dev/null 2>&1 || missing="$missing dcm2niix"
  { command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ]; } || missing="$missing orthanc"
  ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 || missing="$missing orthanc-dicomweb"
  command -v getscu >/dev/null 2>&1 || missing="$missing dcmtk"
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      # the orthanc package may start its own system service (ports 4242/8042); the tests
      # never use it: they start their own Orthanc on free loopback ports
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null
    else
      echo "install.sh: missing Debian packages:$missing (the convert tests compare against dcm2niix; the PACS tests need orthanc, orthanc-dicomweb and dcmtk): apt-get install$missing" >&2
    fi
  fi
fi
echo "MedViewer installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
