#!/usr/bin/env bash
# Set up, then run the whole test suite (GUI tests run on a virtual display via pytest-xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
