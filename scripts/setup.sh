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
    if ! .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1" > .venv/pip-torch.log 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" .venv/pip-torch.log >&2
        echo "setup: installing torch failed (log: .venv/pip-torch.log)" >&2
        exit 1
    fi
fi
# constraints.txt pins the versions the suite last passed with
if ! .venv/bin/pip install -q -c constraints.txt -e ".[test,server]" > .venv/pip-install.log 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" .venv/pip-install.log >&2
    echo "setup: pip install failed (log: .venv/pip-install.log)" >&2
    exit 1
fi
.venv/bin/python -c "import imagejury.cli, torch; print('imagejury ready; torch', torch.__version__)"
