#!/usr/bin/env bash
# The GPU checks of issue 12 as one prepared run for a lent NVIDIA machine (the `device` tool),
# which has python3 with CUDA PyTorch, numpy, scipy, safetensors and pytest but no pydicom and
# no ../shared. Never run yet (no task so far was lent a machine).
#   here, once:   bash benchmarks/gpu_check.sh --prepare   # .gpu/ (git-ignored): the pydicom
#                 wheel and the middle 40 slices of the demo chest CT (~24 MB with the repo's
#                 36 MB: under the tool's 64 MiB)
#   device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=540)
# Prints the GPU, the CUDA tests (model loaded once, volume moved once, labels = CPU's), then
# benchmarks/inference.py on CUDA (pipeline vs bare forwards, whole 512x512x300 CT time: goal
# <= 1 s); logs also under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  rm -rf .gpu && mkdir -p .gpu/whl .gpu/data/tcia_cmb_crc_ct_chest || exit 1
  .venv/bin/python - <<'PY' || exit 1
import shutil
from pathlib import Path

import pydicom

src = Path("../shared/data/tcia_cmb_crc_ct_chest")
z = {}
for p in src.iterdir():  # the DICOM files only (the folder also holds its provenance)
    try:
        z[p] = float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
    except Exception:
        continue
files = sorted(z, key=z.get)
mid = len(files) // 2
for p in files[mid - 20:mid + 20]:  # 40 contiguous slices: even spacing
    shutil.copy2(p, Path(".gpu/data/tcia_cmb_crc_ct_chest") / p.name)
PY
  v=$(.venv/bin/python -c "import pydicom; print(pydicom.__version__)")
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl "pydicom==$v" || exit 1
  du -sh .gpu
  exit 0
fi
out=${OUT:-/tmp}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MEDVIEWER_SHARED_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider tests/unit/ai/test_cuda_inference.py -s 2>&1 | tee "$out/cuda_tests.log"
python3 benchmarks/inference.py --device cuda --no-memory --no-classification --quick \
  2>&1 | tee "$out/inference_cuda.json"
