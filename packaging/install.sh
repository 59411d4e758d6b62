#!/usr/bin/env bash
# Set up MedViewer in ./.venv. Usage: bash packaging/install.sh [--test] [--gpu]
#   --test  also install the test tools (pytest, pytest-qt, import-linter) and dcm2niix
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
if [ "$want_test" = 1 ] && ! command -v dcm2niix >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcm2niix) >/dev/null
  else
    echo "install.sh: dcm2niix is missing; the convert tests compare against it (Debian: apt-get install dcm2niix)" >&2
  fi
fi
echo "MedViewer installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
