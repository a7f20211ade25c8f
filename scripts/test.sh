#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools the tests use: FFmpeg (reference decodes), espeak-ng (test speech),
# browsers for the end-to-end tests, PulseAudio for Firefox's fake microphone, Node.js and npm
# for the JavaScript Speech SDK tests (tests/test_js_sdk.py).
packages=(ffmpeg espeak-ng sox chromium firefox-esr pulseaudio pulseaudio-utils)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q "${missing[@]}" || { $sudo apt-get update -q && $sudo apt-get install -y -q "${missing[@]}"; }
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev,all]'
# The JavaScript Speech SDK, pinned by tests/js/package-lock.json (only the npm registry).
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
# With Node here, the JS SDK tests must run, not skip.
export STREAMDIARIZE_REQUIRE_NODE=1
exec .venv/bin/python -m pytest "$@"
