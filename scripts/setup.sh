#!/usr/bin/env bash
# Create .venv with torch and imagejury (editable) and its test/server extras.
# torch comes first, pinned: on this project's machines pip takes 2.14.1 / 0.29.1 from
# local disk; PyPI's torchvision fails beside other torch builds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/pip install -q -e ".[test,server]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import evaluator.cli, torch; print('imagejury ready; torch', torch.__version__)"
