#!/usr/bin/env bash
# Set up everything, then run the test suite (GUI tests run on a virtual display via pytest-xvfb).
# On Debian/Ubuntu the system packages headless Qt needs are installed here when we can (root,
# or sudo without a password); otherwise the one command to run is printed and we stop.
# Arguments go to pytest, e.g. `bash scripts/test.sh -x tests/test_cli.py`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Xvfb and the libraries Qt's xcb platform plugin loads
SYSTEM_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 libxkbcommon-x11-0
  libxcb-randr0 libxcb-render-util0 libxcb-image0 libxcb-shape0 libgl1 libegl1 libfontconfig1 libdbus-1-3"

missing_packages() {
  local p
  for p in $SYSTEM_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$p"
  done
}

if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
  missing=$(missing_packages)
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
      sudo=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "scripts/test.sh: the GUI tests need these system packages; install them, then run this again:" >&2
      echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $missing" >&2
      exit 1
    fi
    echo "scripts/test.sh: installing system packages for headless Qt: $missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
elif ! command -v Xvfb >/dev/null && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  # not Debian: we cannot install for you. Without a display the Qt tests abort with a bare
  # "Fatal Python error", so say what is missing instead
  echo "scripts/test.sh: no display and no Xvfb: the GUI tests need one. Install Xvfb and the xcb libraries" \
       "(Debian names: $(echo $SYSTEM_PACKAGES)) with your system's package manager" >&2
  exit 1
fi

bash scripts/setup.sh
set +e
.venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "scripts/test.sh: pytest collected no tests: that is a failure here" >&2
fi
exit "$rc"
