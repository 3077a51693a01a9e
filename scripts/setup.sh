#!/usr/bin/env bash
# Set up everything glyphfuse needs on a fresh machine, idempotently:
#   1. the tesseract OCR binary and, for the browser test, chromium + chromedriver (apt-get, only
#      when they are missing),
#   2. a virtual environment with torch (the pinned CPU build first), then glyphfuse with its
#      test, serve and scenes (RapidOCR for colour pictures) extras.
# Usage: scripts/setup.sh [VENV_DIR]   (default .venv)
set -euo pipefail
venv="${1:-.venv}"
cd "$(dirname "$0")/.."

# apt_install WHAT PACKAGE...: install Debian packages with apt-get (sudo when not root).
apt_install() {
    local what="$1"; shift
    echo "setup: installing $* with apt-get"
    local sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo_cmd="sudo"
    if command -v apt-get >/dev/null 2>&1; then
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@" >/dev/null
    else
        echo "setup: $what is missing and apt-get is not available; install $* by hand" >&2
        exit 1
    fi
}

if ! command -v tesseract >/dev/null 2>&1; then
    apt_install tesseract tesseract-ocr
fi
# The browser test of `glyphfuse serve` (tests/test_serve_browser.py) drives Debian's Chromium.
if [ ! -x /usr/bin/chromedriver ]; then
    apt_install chromedriver chromium chromium-driver
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating virtual environment $venv"
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.glyphfuse-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    # The pinned CPU build installs from local disk in seconds here; an unpinned torch would pull
    # a multi-GB CUDA build. Elsewhere, any torch in the project's range is fine.
    if ! "$py" -c "import torch" >/dev/null 2>&1; then
        "$py" -m pip install -q torch==2.13.0 || "$py" -m pip install -q "torch>=2.1,<2.15"
    fi
    "$py" -m pip install -q -e ".[test,serve,scenes]"
    touch "$stamp"
fi
echo "setup: ready ($("$py" -c 'import torch, glyphfuse; print("glyphfuse", glyphfuse.__version__, "torch", torch.__version__)'))"
