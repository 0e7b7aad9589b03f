#!/usr/bin/env bash
# Create .venv (if missing) and install napari-tower with Qt 6 and the test tools, CPU torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements/constraints-cpu.txt ".[testing]"
