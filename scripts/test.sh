#!/usr/bin/env bash
# Set up, then run the whole test suite (GUI tests run on a virtual display via pytest-xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
# without a display the Qt tests abort with a bare "Fatal Python error": say what is missing instead
if ! command -v Xvfb >/dev/null && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "no display and no Xvfb: the GUI tests need one. Install the system packages listed in .ci/run" \
       "(Debian/Ubuntu: sudo apt-get install xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 ...)" >&2
  exit 1
fi
bash scripts/setup.sh
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
