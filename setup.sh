#!/usr/bin/env bash
# Set up tlzoo in a virtual environment, then run the demo or the test suite.
#
#   bash setup.sh demo [tlzoo demo options]   # install everything, run the offline demo
#   bash setup.sh test [pytest options]       # install everything, run the full test suite
#   bash setup.sh install                     # install everything only
#
# Environment: TLZOO_VENV (default .venv), PYTHON (default python3),
# TLZOO_EDITABLE=1 installs the packages in editable mode (for development).
set -euo pipefail
cd "$(dirname "$0")"
action=${1:-install}
[ $# -gt 0 ] && shift
venv=${TLZOO_VENV:-.venv}
python=${PYTHON:-python3}

# System packages: ffmpeg and espeak-ng (spoken words for the audio demo and tests).
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tlzoo setup: installing ${missing[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "tlzoo setup: missing system packages: ${missing[*]}." >&2
    echo "  Install them first, e.g. 'sudo apt-get install -y ${missing[*]}' (Debian/Ubuntu) or 'brew install ${missing[*]}' (macOS)." >&2
    exit 1
  fi
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# The CPU wheel of torch first, so nothing pulls a multi-GB CUDA build.
"$venv/bin/python" -c "import torch" >/dev/null 2>&1 || "${pip[@]}" install "torch==2.13.0"
editable=()
[ "${TLZOO_EDITABLE:-0}" = 1 ] && editable=(-e)
"${pip[@]}" install "${editable[@]}" ".[test,demo]" "${editable[@]}" ./plugins/tlzoo-image \
  "${editable[@]}" ./plugins/tlzoo-audio "${editable[@]}" ./plugins/tlzoo-text

case "$action" in
  install) echo "tlzoo setup: installed in $venv (activate with: . $venv/bin/activate)" ;;
  demo) exec "$venv/bin/tlzoo" demo "$@" ;;
  test) exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@" ;;
  *) echo "usage: bash setup.sh [install|demo|test] [options]" >&2; exit 2 ;;
esac
